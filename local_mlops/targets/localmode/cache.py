"""Step caching with SageMaker ``CacheConfig`` semantics, stored in the bucket.

A step whose ``CacheConfig`` is enabled is looked up by a key over its *resolved* request (after
parameter and property substitution), minus the fields SageMaker regenerates per run (job names).
A hit reuses the earlier successful execution's properties, provided the entry has not outlived
``ExpireAfter`` and the artifacts it points to are still in S3. Entries live under
``_local-mlops/cache/`` so they survive the process (and the emulator, with snapshots).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from botocore.exceptions import ClientError

from local_mlops.pipeline import contract

CACHE_PREFIX = "_local-mlops/cache"
# Request fields regenerated on every run: never part of the key.
VOLATILE_FIELDS = frozenset(
    {
        "TrainingJobName",
        "ProcessingJobName",
        "HyperParameterTuningJobName",
        "TransformJobName",
        "ModelName",
        "ModelPackageName",
        "Tags",
        "ExperimentConfig",
    }
)
_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_WEEKS = re.compile(r"^P(?P<weeks>\d+)W$")


def parse_duration(text: str) -> dt.timedelta:
    """An ISO 8601 duration as in ``ExpireAfter`` (``P30D``, ``PT1H``, ``P2W``)."""
    weeks = _WEEKS.match(text)
    if weeks:
        return dt.timedelta(weeks=int(weeks["weeks"]))
    match = _DURATION.match(text)
    if not match or text in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return dt.timedelta(**parts)


def _strip_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_volatile(v) for k, v in value.items() if k not in VOLATILE_FIELDS}
    if isinstance(value, list):
        return [_strip_volatile(v) for v in value]
    return value


def cache_key(pipeline_name: str, step_name: str, step_type: str, arguments: dict) -> str:
    """A stable hash of what the step would run: same resolved request, same key."""
    canonical = json.dumps(
        {
            "pipeline": pipeline_name,
            "step": step_name,
            "type": step_type,
            "arguments": _strip_volatile(arguments),
        },
        sort_keys=True,
        default=str,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def step_request(step: Any) -> dict:
    """The step's definition entry; the local executor runs compiled steps (``CompiledStep``)."""
    request = getattr(step, "_request_dict", None)
    return request if isinstance(request, dict) else step.to_request()


def step_cache_config(step: Any) -> tuple[bool, str | None]:
    """(enabled, ExpireAfter) from the step's ``CacheConfig``."""
    config = step_request(step).get("CacheConfig") or {}
    return bool(config.get("Enabled")), config.get("ExpireAfter")


def artifact_uris(step_type: str, properties: dict) -> list[str]:
    """The S3 URIs a cached step's downstream consumers will read: they must still exist."""
    uris: list[str] = []
    if step_type == "Training":
        uri = (properties.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
        if uri:
            uris.append(uri)
    elif step_type == "Processing":
        outputs = (properties.get("ProcessingOutputConfig") or {}).get("Outputs") or {}
        values = outputs.values() if isinstance(outputs, dict) else outputs
        uris.extend(o["S3Output"]["S3Uri"] for o in values if o.get("S3Output"))
    elif step_type == "Tuning":
        output_path = (
            (properties.get("TrainingJobDefinition") or {}).get("OutputDataConfig") or {}
        ).get("S3OutputPath")
        best = (properties.get("BestTrainingJob") or {}).get("TrainingJobName")
        if output_path and best:
            uris.append(f"{output_path.rstrip('/')}/{best}/output/{contract.MODEL_ARCHIVE_FILE}")
    return uris


def _split(uri: str) -> tuple[str, str]:
    without = uri[len("s3://") :]
    bucket, _, key = without.partition("/")
    return bucket, key


class StepCache:
    """Cache entries as JSON objects: ``<prefix>/<pipeline>/<step>/<key>.json``."""

    def __init__(self, s3_client: Any, bucket: str, prefix: str = CACHE_PREFIX) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix.rstrip("/")

    def _key(self, pipeline_name: str, step_name: str, key: str) -> str:
        return f"{self.prefix}/{pipeline_name}/{step_name}/{key}.json"

    def lookup(
        self,
        pipeline_name: str,
        step_name: str,
        step_type: str,
        key: str,
        expire_after: str | None,
        now: dt.datetime | None = None,
    ) -> dict | None:
        """The cached entry, if fresh and its artifacts still exist; else None."""
        try:
            body = self.s3.get_object(
                Bucket=self.bucket, Key=self._key(pipeline_name, step_name, key)
            )["Body"].read()
        except ClientError:
            return None
        entry = json.loads(body)
        if expire_after:
            created = dt.datetime.fromisoformat(entry["created"])
            if (now or dt.datetime.now(dt.UTC)) - created > parse_duration(expire_after):
                return None
        if not all(self._exists(uri) for uri in artifact_uris(step_type, entry["properties"])):
            return None
        return entry

    def store(
        self,
        pipeline_name: str,
        step_name: str,
        step_type: str,
        key: str,
        properties: dict,
        source_execution_arn: str,
    ) -> None:
        entry = {
            "pipeline": pipeline_name,
            "step": step_name,
            "type": step_type,
            "key": key,
            "created": dt.datetime.now(dt.UTC).isoformat(),
            "source_execution_arn": source_execution_arn,
            "properties": properties,
        }
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self._key(pipeline_name, step_name, key),
            Body=json.dumps(entry, default=str).encode(),
            ContentType="application/json",
        )

    def _exists(self, uri: str) -> bool:
        if not uri.startswith("s3://"):
            return False
        bucket, key = _split(uri)
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
            return True
        except ClientError:
            pass
        listing = self.s3.list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1)
        return bool(listing.get("KeyCount"))
