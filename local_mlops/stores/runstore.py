"""Local pipeline executions persisted as JSON in the bucket, so they outlive the command.

One document per execution at ``<prefix>/<execution id>.json``, rewritten whenever a step starts
or finishes: another process (``local-mlops runs describe``, the UI) can watch a run in progress.
While a run is Executing, an empty marker ``<active prefix>/<execution id>`` lets the next command
find it with one listing and fail it if the process named in ``Owner`` is gone
(``fail_orphans``). Record shape::

    {"PipelineExecutionArn", "ExecutionId", "PipelineName", "DisplayName", "Parameters",
     "Status": "Executing|Succeeded|Failed|Stopped", "FailureReason", "StartTime", "EndTime",
     "Owner": {"Pid", "Host", "ProcessStartTime"},
     "Steps": [{"StepName", "StepType", "StepStatus", "StartTime", "EndTime", "Attempts",
                "FailureReason", "LogTail", "Metadata", "CacheHitResult",
                "Cache": {"Hit", "Reason", "SourceExecutionId"}}]}

When the bucket cannot be reached (the emulator died in the middle of a run), a record is kept in
``pending_dir`` instead and written to the bucket by the next read once the emulator is back, so
the run's last state (Failed, with the reason) is not lost with the connection.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from local_mlops.errors import LocalMlopsError

logger = logging.getLogger(__name__)
RUNNING = ("Executing", "Stopping")
# ``RunStore.list`` shadows the builtin inside the class body.
Ids = list[str]
Records = list[dict]


class RunStore:
    """Reads and writes execution records."""

    def __init__(
        self,
        s3_client: Any,
        bucket: str,
        prefix: str = "_local-mlops/executions",
        pending_dir: Path | None = None,
        active_prefix: str = "_local-mlops/active-executions",
    ) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix.rstrip("/")
        self.pending_dir = pending_dir
        self.active_prefix = active_prefix.rstrip("/")
        self._lock = threading.Lock()
        self._marked: set[str] = set()

    def _key(self, execution_id: str) -> str:
        return f"{self.prefix}/{execution_id}.json"

    def save(self, record: dict) -> None:
        """Write (or overwrite) one execution record."""
        body = json.dumps(record, indent=1, default=str).encode()
        execution_id = record["ExecutionId"]
        marker = f"{self.active_prefix}/{execution_id}"
        pending = self._pending_path(execution_id)
        with self._lock:
            try:
                if record.get("Status") in RUNNING and execution_id not in self._marked:
                    self.s3.put_object(Bucket=self.bucket, Key=marker, Body=b"")
                    self._marked.add(execution_id)
                self._put(execution_id, body)
                if record.get("Status") not in RUNNING:
                    self.s3.delete_object(Bucket=self.bucket, Key=marker)
                    self._marked.discard(execution_id)
            except BotoCoreError:
                if pending is None:
                    raise
                pending.parent.mkdir(parents=True, exist_ok=True)
                pending.write_bytes(body)
                raise
            if pending is not None:
                pending.unlink(missing_ok=True)

    def _put(self, execution_id: str, body: bytes) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self._key(execution_id),
            Body=body,
            ContentType="application/json",
        )

    def _pending_path(self, execution_id: str) -> Path | None:
        return self.pending_dir / f"{execution_id}.json" if self.pending_dir else None

    def flush_pending(self) -> int:
        """Write records kept locally while the bucket was unreachable; returns how many."""
        if self.pending_dir is None or not self.pending_dir.is_dir():
            return 0
        written = 0
        for path in sorted(self.pending_dir.glob("*.json")):
            with self._lock:
                try:
                    self._put(path.stem, path.read_bytes())
                except BotoCoreError as exc:
                    logger.warning("could not write the kept record %s yet: %s", path.name, exc)
                    return written
                path.unlink(missing_ok=True)
            written += 1
        return written

    def get(self, execution_id: str) -> dict:
        """One execution by id (or by an ARN ending in the id)."""
        execution_id = execution_id.rsplit("/", 1)[-1]
        self.flush_pending()
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._key(execution_id))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise LocalMlopsError(
                    f"no local execution {execution_id!r}",
                    "list executions with `local-mlops runs list`",
                ) from exc
            raise
        return json.loads(body.read())

    def list(self) -> list[dict]:
        """All executions, newest first."""
        self.flush_pending()
        records = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/"):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith(".json"):
                    body = self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                    records.append(json.loads(body))
        return sorted(records, key=lambda r: str(r.get("StartTime", "")), reverse=True)

    def running_ids(self) -> Ids:
        """Executions that were Executing when last saved (one listing, no record reads)."""
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"{self.active_prefix}/")
        return [obj["Key"].rsplit("/", 1)[-1] for obj in listing.get("Contents", [])]

    def fail_orphans(self, reason_if_gone: Callable[[dict], str | None]) -> Records:
        """Mark Failed every running execution for which ``reason_if_gone`` gives a reason.

        The reason (e.g. "the CLI that ran it stopped (pid N)") becomes the execution's and its
        unfinished steps' ``FailureReason``. Returns the records it changed.
        """
        failed: Records = []
        for execution_id in self.running_ids():
            try:
                record = self.get(execution_id)
            except LocalMlopsError:
                record = {"ExecutionId": execution_id, "Status": "Unknown"}
            reason = reason_if_gone(record) if record.get("Status") in RUNNING else None
            if record.get("Status") in RUNNING and reason is None:
                continue
            if reason is not None:
                now = dt.datetime.now(dt.UTC).isoformat()
                for step in record.get("Steps", []):
                    if step.get("StepStatus") in ("Starting", *RUNNING):
                        step.update(StepStatus="Failed", FailureReason=reason, EndTime=now)
                record.update(Status="Failed", FailureReason=reason, EndTime=now)
                failed.append(record)
            if "PipelineExecutionArn" in record:
                self.save(record)  # not running any more: also drops the marker
            else:
                self.s3.delete_object(
                    Bucket=self.bucket, Key=f"{self.active_prefix}/{execution_id}"
                )
        return failed
