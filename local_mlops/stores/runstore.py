"""Local pipeline executions persisted as JSON in the bucket, so they outlive the command.

One document per execution at ``<prefix>/<execution id>.json``, rewritten whenever a step starts
or finishes: another process (``local-mlops runs describe``, the UI) can watch a run in progress.
Record shape::

    {"PipelineExecutionArn", "ExecutionId", "PipelineName", "DisplayName", "Parameters",
     "Status": "Executing|Succeeded|Failed", "FailureReason", "StartTime", "EndTime",
     "Steps": [{"StepName", "StepType", "StepStatus", "StartTime", "EndTime", "Attempts",
                "FailureReason", "LogTail", "Metadata", "CacheHitResult"}]}
"""

from __future__ import annotations

import json
import threading
from typing import Any

from botocore.exceptions import ClientError

from local_mlops.errors import LocalMlopsError


class RunStore:
    """Reads and writes execution records."""

    def __init__(
        self, s3_client: Any, bucket: str, prefix: str = "_local-mlops/executions"
    ) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix.rstrip("/")
        self._lock = threading.Lock()

    def _key(self, execution_id: str) -> str:
        return f"{self.prefix}/{execution_id}.json"

    def save(self, record: dict) -> None:
        """Write (or overwrite) one execution record."""
        body = json.dumps(record, indent=1, default=str).encode()
        with self._lock:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=self._key(record["ExecutionId"]),
                Body=body,
                ContentType="application/json",
            )

    def get(self, execution_id: str) -> dict:
        """One execution by id (or by an ARN ending in the id)."""
        execution_id = execution_id.rsplit("/", 1)[-1]
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
        records = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/"):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith(".json"):
                    body = self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                    records.append(json.loads(body))
        return sorted(records, key=lambda r: str(r.get("StartTime", "")), reverse=True)
