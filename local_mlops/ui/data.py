"""What the dashboard shows, read from the same bucket documents the CLI reads.

Run records (``stores/runstore.py``), model packages (``stores/registry.py``), the evaluation
reports and training histories in S3. Nothing is copied into a second store: each page lists the
prefixes again and fetches only the documents whose ETag changed since the last request, so a
page stays fast with many runs and versions while a run in flight still shows its latest state.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError
from local_mlops.serving.capture import CAPTURE_PREFIX
from local_mlops.ui.jobs import Deploy, Deployments

FETCHERS = 8  # documents fetched at once on a cold page
HISTORY_FILE = "history.json"  # written by the train entry point into output/data
GROUND_TRUTH_PREFIX = "groundtruth"  # SageMaker's ground-truth records, by endpoint


def parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def seconds_between(start: Any, end: Any) -> float | None:
    begin, finish = parse_time(start), parse_time(end)
    if begin is None:
        return None
    return ((finish or dt.datetime.now(dt.UTC)) - begin).total_seconds()


def split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise LocalMlopsError(f"not an S3 URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


class ObjectCache:
    """JSON documents under S3 prefixes, re-fetched only when their ETag changes."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self._docs: dict[tuple[str, str], tuple[str, Any]] = {}
        self._blobs: dict[tuple[str, str], bytes | None] = {}
        self._written: dict[str, Any] = {}  # documents that never change once written
        self._lock = threading.Lock()

    def listing(self, prefix: str, suffix: str = "") -> list[tuple[str, str]]:
        """(key, ETag) of every object under ``prefix`` whose key ends with ``suffix``."""
        found = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith(suffix):
                    found.append((obj["Key"], obj.get("ETag", "")))
        return found

    def folders(self, prefix: str) -> list[str]:
        """The names of the folders directly under ``prefix`` (which ends with ``/``)."""
        names = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                names.append(common["Prefix"][len(prefix) :].rstrip("/"))
        return names

    def documents(self, prefix: str) -> list[Any]:
        """Every ``*.json`` document under ``prefix``, in key order."""
        return [doc for _, doc in self.keyed_documents(prefix)]

    def keyed_documents(self, prefix: str, suffix: str = ".json") -> list[tuple[str, Any]]:
        """(key, document) of every JSON document under ``prefix``, in key order."""
        found = self.listing(prefix, suffix)
        return [(key, doc) for key, etag in found if (doc := self.document(key, etag)) is not None]

    def document(self, key: str, etag: str) -> Any:
        """One JSON document, fetched again only when its ETag changed; None when unreadable."""
        with self._lock:
            cached = self._docs.get((self.bucket, key))
        if cached and cached[0] == etag:
            return cached[1]
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            doc = json.loads(body)
        except (ClientError, ValueError):
            return None
        with self._lock:
            self._docs[(self.bucket, key)] = (etag, doc)
        return doc

    def written_documents(self, keys: list[str]) -> dict[str, Any]:
        """{key: JSON document} of documents that never change once written (a monitoring
        report's files): each fetched once, the missing ones in parallel; a key that does not
        exist yet (a report still being written) is left out and tried again next time."""
        with self._lock:
            found = {k: self._written[k] for k in keys if k in self._written}
        missing = [k for k in keys if k not in found]
        if missing:
            with ThreadPoolExecutor(max_workers=min(FETCHERS, len(missing))) as pool:
                fetched = dict(zip(missing, pool.map(self._fetch_json, missing), strict=True))
            fetched = {k: doc for k, doc in fetched.items() if doc is not None}
            with self._lock:
                self._written.update(fetched)
            found.update(fetched)
        return found

    def _fetch_json(self, key: str) -> Any:
        try:
            return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except (ClientError, ValueError):
            return None

    def line_count(self, key: str, etag: str) -> int:
        """The number of non-empty lines of one object (JSON Lines), cached by ETag."""
        with self._lock:
            cached = self._docs.get((self.bucket, key))
        if cached and cached[0] == etag:
            return int(cached[1])
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError:
            return 0
        count = sum(1 for line in body.splitlines() if line.strip())
        with self._lock:
            self._docs[(self.bucket, key)] = (etag, count)
        return count

    def blob(self, uri: str) -> bytes | None:
        """An object that never changes once written (reports, archives); None when missing."""
        bucket, key = split_s3(uri)
        with self._lock:
            if (bucket, key) in self._blobs and self._blobs[(bucket, key)] is not None:
                return self._blobs[(bucket, key)]
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError:
            body = None
        with self._lock:
            self._blobs[(bucket, key)] = body
        return body


@dataclass
class RunView:
    """One execution as the pages show it."""

    record: dict[str, Any]
    package: dict[str, Any] | None = None
    histories: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.record.get("ExecutionId", ""))

    @property
    def status(self) -> str:
        return str(self.record.get("Status", "Unknown"))

    @property
    def seconds(self) -> float | None:
        return seconds_between(self.record.get("StartTime"), self.record.get("EndTime"))

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.record.get("Parameters") or {})

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.record.get("Steps") or [])

    @property
    def accuracy(self) -> float | None:
        metrics = (self.package or {}).get("Metrics") or {}
        value = metrics.get("accuracy")
        return float(value) if isinstance(value, int | float) else None

    @property
    def failed_step(self) -> dict[str, Any] | None:
        return next((s for s in self.steps if s.get("StepStatus") == "Failed"), None)

    @property
    def live(self) -> bool:
        return self.status in ("Executing", "Stopping")


class Dashboard:
    """The dashboard's reads and its one write (approval), over the local target's stores."""

    def __init__(self, settings: Settings, target: Any, deploy: Deploy | None = None) -> None:
        self.settings = settings
        self.target = target
        self.runstore = target.runs
        self.registry = target.models
        s3 = target.session.s3_client
        self.cache = ObjectCache(s3, settings.bucket)
        self.deployments = Deployments(settings, deploy)

    # runs
    def runs(self) -> list[RunView]:
        records = self.cache.documents(f"{self.runstore.prefix}/")
        packages = self._packages_by_execution()
        views = [RunView(r, packages.get(str(r.get("ExecutionId", "")))) for r in records]
        return sorted(views, key=lambda v: str(v.record.get("StartTime", "")), reverse=True)

    def run(self, execution_id: str) -> RunView:
        record = self.runstore.get(execution_id)
        view = RunView(record, self._packages_by_execution().get(str(record.get("ExecutionId"))))
        for step in view.steps:
            for job in _training_jobs(step):
                history = self.history(job)
                if history:
                    view.histories[job] = history
        return view

    def history(self, job_name: str) -> list[dict[str, float]]:
        """Per-epoch metrics of one training job, from its output.tar.gz."""
        uri = (
            f"s3://{self.settings.bucket}/pipelines/{self.settings.pipeline_name}/models/"
            f"{job_name}/output/output.tar.gz"
        )
        archive = self.cache.blob(uri)
        if not archive:
            return []
        try:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                member = next(
                    (m for m in tar.getmembers() if m.name.rsplit("/", 1)[-1] == HISTORY_FILE),
                    None,
                )
                if member is None:
                    return []
                handle = tar.extractfile(member)
                return list(json.loads(handle.read())) if handle else []
        except (tarfile.TarError, ValueError, OSError):
            return []

    # registry
    def packages(self) -> list[dict[str, Any]]:
        group = self.settings.model_package_group
        docs = self.cache.documents(f"{self.registry.prefix}/groups/{group}/versions/")
        return sorted(docs, key=lambda d: int(d.get("ModelPackageVersion", 0)), reverse=True)

    def package(self, version: int) -> dict[str, Any]:
        return dict(self.registry.describe(f"{self.settings.model_package_group}/{version}"))

    def evaluation(self, package: dict[str, Any]) -> dict[str, Any]:
        """The evaluation report a package's ModelMetrics point at (empty when unreadable)."""
        source = (package.get("ModelMetrics") or {}).get("ModelQuality", {}).get("Statistics", {})
        uri = str(source.get("S3Uri") or "")
        if not uri.startswith("s3://"):
            return {}
        body = self.cache.blob(uri)
        try:
            return dict(json.loads(body)) if body else {}
        except ValueError:
            return {}

    def set_approval(self, version: int, status: str, reason: str = "") -> dict[str, Any]:
        """Approve or reject a version with the CLI's own call (``models approve|reject``)."""
        from local_mlops.targets import endpoints

        self.package(version)  # a missing version is a 404 before anything changes
        return endpoints.approve(self.settings, version, status, reason or None, _quiet)

    def approve_and_deploy(self, version: int, reason: str = "") -> tuple[dict[str, Any], Any]:
        """``models approve N``: approve, then deploy that version (on a thread)."""
        if self.deployments.running():
            busy = self.deployments.running()[0]
            raise LocalMlopsError(
                f"endpoint {busy.endpoint} is already being deployed (version {busy.version})",
                "wait for that deployment to finish, then approve again",
            )
        package = self.set_approval(version, "Approved", reason)
        return package, self.deployments.start(version)

    # monitoring and labeling
    def baseline_statistics(self, version: int | None) -> dict[str, Any]:
        """The drift-check baseline statistics.json of ``version`` (else the newest Approved
        version); empty when that version has none."""
        chosen = None
        if version is not None:  # the endpoint's version: one document, not the whole registry
            with contextlib.suppress(LocalMlopsError):
                chosen = self.package(int(version))
        if chosen is None:
            packages = self.packages()
            chosen = next((p for p in packages if p.get("ModelPackageVersion") == version), None)
            chosen = chosen or next(
                (p for p in packages if p.get("ModelApprovalStatus") == "Approved"), None
            )
        baselines = (chosen or {}).get("DriftCheckBaselines") or {}
        uri = str(((baselines.get("ModelDataQuality") or {}).get("Statistics") or {}).get("S3Uri"))
        if not uri.startswith("s3://"):
            return {}
        bucket, key = split_s3(uri)
        doc = self.cache.written_documents([key]).get(key) if bucket == self.cache.bucket else None
        return dict(doc) if isinstance(doc, dict) else {}

    def captures(self) -> list[dict[str, Any]]:
        """Per endpoint: captured records and ground-truth labels (JSON Lines under
        ``datacapture/ENDPOINT/`` and ``groundtruth/ENDPOINT/``)."""
        rows = []
        for endpoint in self.cache.folders(f"{CAPTURE_PREFIX}/"):
            files = self.cache.listing(f"{CAPTURE_PREFIX}/{endpoint}/", ".jsonl")
            labels = self.cache.listing(f"{GROUND_TRUTH_PREFIX}/{endpoint}/", ".jsonl")
            captured = sum(self.cache.line_count(k, e) for k, e in files)
            labeled = sum(self.cache.line_count(k, e) for k, e in labels)
            rows.append(
                {
                    "endpoint": endpoint,
                    "files": len(files),
                    "captured": captured,
                    "labeled": labeled,
                    "waiting": max(0, captured - labeled),
                }
            )
        return rows

    def _packages_by_execution(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for package in self.packages():
            execution = str(package.get("PipelineExecutionArn") or "").rsplit("/", 1)[-1]
            if execution and execution not in found:
                found[execution] = package
        return found


def _quiet(_: str) -> None:
    """The approval's progress lines: the page shows the result instead."""


def _training_jobs(step: dict[str, Any]) -> list[str]:
    """Names of the training jobs a step ran (one for Train, one per trial for Tune)."""
    metadata = step.get("Metadata") or {}
    jobs = []
    arn = (metadata.get("TrainingJob") or {}).get("Arn")
    if arn:
        jobs.append(str(arn).rsplit("/", 1)[-1])
    for trial in step.get("Trials") or []:
        name = trial.get("TrainingJobName")
        if name:
            jobs.append(str(name))
    return jobs
