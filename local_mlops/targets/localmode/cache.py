"""Step caching with SageMaker ``CacheConfig`` semantics, stored in the bucket.

A step whose ``CacheConfig`` is enabled is looked up by a key over its *resolved* request (after
parameter and property substitution), minus the fields SageMaker regenerates per run (job names),
plus the content identity of what the request names (``identity.py``): the image's ID and a
digest of each S3 input. SageMaker's cloud cache keys on the request alone, so a rebuilt image
under the same tag or new data under the same URI would be served stale; here they are misses.
A hit reuses the earlier successful execution's properties, provided the entry has not outlived
``ExpireAfter`` and the artifacts it points to are still in S3. Every lookup says why it hit or
missed (``Lookup.reason``), which the run record keeps. Entries live under
``_local-mlops/cache/`` so they survive the process (and the emulator, which persists every write).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from local_mlops.pipeline import contract
from local_mlops.targets.localmode.identity import describe_change

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


def cache_key(
    pipeline_name: str,
    step_name: str,
    step_type: str,
    arguments: dict,
    content: dict | None = None,
) -> str:
    """A stable hash of what the step would run: same resolved request and content, same key.

    ``content`` is the request's content identity (image IDs, input digests); without it the
    key is the request key, which names things but does not pin them.
    """
    canonical = json.dumps(
        {
            "pipeline": pipeline_name,
            "step": step_name,
            "type": step_type,
            "arguments": _strip_volatile(arguments),
            **({"content": content} if content is not None else {}),
        },
        sort_keys=True,
        default=str,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def changed_paths(before: Any, after: Any, path: str = "", limit: int = 3) -> list[str]:
    """Dotted paths where two requests differ (``HyperParameters.epochs``), at most ``limit``."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for key in sorted(set(before) | set(after), key=str):
            found += changed_paths(before.get(key), after.get(key), f"{path}.{key}".lstrip("."))
            if len(found) >= limit:
                break
        return found[:limit]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        found = []
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            found += changed_paths(old, new, f"{path}[{index}]")
        return found[:limit]
    return [] if before == after else [path or "(request)"]


@dataclass
class Lookup:
    """A cache decision: the entry to reuse (None on a miss) and why, in words."""

    entry: dict | None
    reason: str

    @property
    def hit(self) -> bool:
        return self.entry is not None

    def as_record(self) -> dict:
        source = (self.entry or {}).get("source_execution_arn") or ""
        return {
            "Hit": self.hit,
            "Reason": self.reason,
            "SourceExecutionId": source.rsplit("/", 1)[-1] or None,
        }


def _execution_of(entry: dict) -> str:
    return str(entry.get("source_execution_arn", "")).rsplit("/", 1)[-1] or "?"


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
    """Cache entries as JSON objects under ``<prefix>/<pipeline>/<step>/``.

    ``<key>.json`` is the entry for one full key; ``requests/<request key>.json`` the latest
    entry for the same request (to say which image or input changed) and ``latest.json`` the
    step's latest entry (to say which part of the request changed).
    """

    def __init__(self, s3_client: Any, bucket: str, prefix: str = CACHE_PREFIX) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix.rstrip("/")

    def _key(self, pipeline_name: str, step_name: str, key: str) -> str:
        return f"{self.prefix}/{pipeline_name}/{step_name}/{key}.json"

    def _get(self, key: str) -> dict | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError:
            return None
        entry = json.loads(body)
        return entry if isinstance(entry, dict) else None

    def lookup(
        self,
        pipeline_name: str,
        step_name: str,
        step_type: str,
        key: str,
        expire_after: str | None,
        now: dt.datetime | None = None,
        request_key: str | None = None,
        content: dict | None = None,
        arguments: dict | None = None,
    ) -> Lookup:
        """The entry to reuse if fresh and its artifacts still exist, and why it is or is not."""
        entry = self._get(self._key(pipeline_name, step_name, key))
        if entry is not None:
            source = _execution_of(entry)
            if expire_after:
                created = dt.datetime.fromisoformat(entry["created"])
                if (now or dt.datetime.now(dt.UTC)) - created > parse_duration(expire_after):
                    return Lookup(
                        None, f"the entry from execution {source} expired ({expire_after})"
                    )
            missing = [
                uri
                for uri in artifact_uris(step_type, entry["properties"])
                if not self._exists(uri)
            ]
            if missing:
                return Lookup(None, f"the artifacts of execution {source} are gone ({missing[0]})")
            return Lookup(entry, f"cache hit from execution {source}")
        return Lookup(
            None, self._why_missed(pipeline_name, step_name, request_key, content, arguments)
        )

    def _why_missed(
        self,
        pipeline_name: str,
        step_name: str,
        request_key: str | None,
        content: dict | None,
        arguments: dict | None,
    ) -> str:
        base = f"{self.prefix}/{pipeline_name}/{step_name}"
        if request_key is not None:
            same_request = self._get(f"{base}/requests/{request_key}.json")
            if same_request is not None:
                changes = describe_change(same_request.get("content") or {}, content or {})
                source = _execution_of(same_request)
                if changes:
                    return "; ".join(f"{c} since execution {source}" for c in changes)
                return f"the entry from execution {source} no longer matches"
        latest = self._get(f"{base}/latest.json")
        if latest is None:
            return "no earlier run"
        current = json.loads(json.dumps(_strip_volatile(arguments or {}), default=str))
        paths = changed_paths(latest.get("arguments"), current)
        where = f" ({', '.join(paths)})" if paths and latest.get("arguments") is not None else ""
        return f"the request changed since execution {_execution_of(latest)}{where}"

    def store(
        self,
        pipeline_name: str,
        step_name: str,
        step_type: str,
        key: str,
        properties: dict,
        source_execution_arn: str,
        request_key: str | None = None,
        content: dict | None = None,
        arguments: dict | None = None,
    ) -> None:
        entry = {
            "pipeline": pipeline_name,
            "step": step_name,
            "type": step_type,
            "key": key,
            "request_key": request_key,
            "content": content,
            "arguments": _strip_volatile(arguments) if arguments is not None else None,
            "created": dt.datetime.now(dt.UTC).isoformat(),
            "source_execution_arn": source_execution_arn,
            "properties": properties,
        }
        body = json.dumps(entry, default=str).encode()
        base = f"{self.prefix}/{pipeline_name}/{step_name}"
        keys = [self._key(pipeline_name, step_name, key), f"{base}/latest.json"]
        if request_key is not None:
            keys.append(f"{base}/requests/{request_key}.json")
        for object_key in keys:
            self.s3.put_object(
                Bucket=self.bucket, Key=object_key, Body=body, ContentType="application/json"
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
