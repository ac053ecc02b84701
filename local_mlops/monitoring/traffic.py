"""``traffic``: realistic requests to a local endpoint, drawn from its run's test split.

The images come from the Preprocess step's ``test`` output of the run that registered the
endpoint's model version (``s3://BUCKET/PIPELINE/EXECUTION/Preprocess/output/test/data.npz``),
drawn with replacement, optionally shifted (``shifts.py``), sent as PNG through the local
SageMaker Runtime router on 127.0.0.1, each with its own ``X-Amzn-SageMaker-Inference-Id``
(``traffic-<run>-<n>``: the key ground truth joins on). Bounded in count and in time; at the
end the router's capture buffer is flushed, so ``monitor run`` sees every request at once.
"""

from __future__ import annotations

import io
import threading
import time
import urllib.error
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError
from local_mlops.monitoring.shifts import SHIFTS, check_shift, png_bytes, shifted_sample
from local_mlops.pipeline import contract
from local_mlops.pipeline.steps import PREPROCESS
from local_mlops.serving import loadgen
from local_mlops.serving.state import Endpoint, EndpointStore
from local_mlops.stores.registry import LocalModelRegistry

MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 16
INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"


def check_request(n: int, rate: float | None, concurrency: int, max_seconds: float) -> None:
    """Bad numbers are a clear error before anything is read or sent."""
    if not 1 <= n <= MAX_REQUESTS:
        raise LocalMlopsError(f"--n must be between 1 and {MAX_REQUESTS}, got {n}")
    if rate is not None and not rate > 0:
        raise LocalMlopsError(f"--rate must be above 0 requests per second, got {rate:g}")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise LocalMlopsError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}")
    if not max_seconds > 0:
        raise LocalMlopsError(f"--max-seconds must be above 0, got {max_seconds:g}")


def check_drift(drift: str | None, strength: float | None) -> float | None:
    """The strength to apply (the kind's default when not given); None for clean traffic."""
    if drift is None:
        if strength is not None:
            raise LocalMlopsError("--strength needs --drift", f"add --drift ({', '.join(SHIFTS)})")
        return None
    try:
        return check_shift(drift, strength)
    except ValueError as error:
        raise LocalMlopsError(str(error), "see `local-mlops traffic --help`") from error


def test_split_key(
    s3: Any, bucket: str, pipeline_name: str, execution_ids: list[str]
) -> str | None:
    """The key of the test split: the first of ``execution_ids`` that has one, else the newest."""
    suffix = f"/{PREPROCESS}/output/{contract.TEST_SPLIT}/{contract.DATA_FILE}"
    found: list[tuple[Any, str]] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{pipeline_name}/"):
        found.extend(
            (o["LastModified"], o["Key"]) for o in page.get("Contents", [])
            if o["Key"].endswith(suffix)
        )  # fmt: skip
    by_execution = {key.split("/")[1]: key for _, key in found if key.count("/") >= 2}
    for execution in execution_ids:
        if execution in by_execution:
            return by_execution[execution]
    return max(found)[1] if found else None


def endpoint_split(settings: Settings, s3: Any, endpoint: str) -> tuple[str, Endpoint]:
    """(the key of the test split, the endpoint's document): the split of the run that registered
    the version the endpoint serves."""
    document = EndpointStore(settings.state_path).get(endpoint)
    registry = LocalModelRegistry(s3, settings.bucket, settings.region)
    executions = [
        str(p.get("PipelineExecutionArn") or "").rsplit("/", 1)[-1]
        for p in registry.list_packages(settings.model_package_group)
        if p.get("ModelPackageVersion") == document.version
    ]
    key = test_split_key(s3, settings.bucket, settings.pipeline_name, executions)
    if key is None:
        raise LocalMlopsError(
            f"no test split under s3://{settings.bucket}/{settings.pipeline_name}/",
            "run the pipeline first: local-mlops run",
        )
    return key, document


def load_split(s3: Any, bucket: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """A preprocess ``data.npz``: uint8 images N×H×W×3 and their integer labels."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        with np.load(io.BytesIO(body)) as data:
            images, labels = np.asarray(data["images"]), np.asarray(data["labels"])
    except (OSError, ValueError, KeyError) as error:
        raise LocalMlopsError(
            f"s3://{bucket}/{key} is not a test split ({error})", "run the pipeline again"
        ) from error
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise LocalMlopsError(f"s3://{bucket}/{key} holds no images (shape {images.shape})")
    return images.astype(np.uint8), labels


def draw(
    images: np.ndarray,
    labels: np.ndarray,
    n: int,
    drift: str | None,
    strength: float | None,
    seed: int | None = None,
) -> tuple[list[bytes], np.ndarray]:
    """``n`` PNG request bodies drawn from the split (shifted by ``drift``) and their labels."""
    rng = np.random.default_rng(seed)
    picked, truth = shifted_sample(images, labels, n, drift, strength, rng)
    return [png_bytes(image) for image in picked], truth


@dataclass
class TrafficResult:
    """What was sent and how it went."""

    endpoint: str
    requested: int
    sent: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    error_samples: list[str] = field(default_factory=list)
    inference_ids: list[str] = field(default_factory=list)  # in the order of the bodies
    stopped_by_time: bool = False

    def summary(self) -> dict[str, Any]:
        ms = np.asarray(self.latencies) * 1000.0
        return {
            "endpoint": self.endpoint,
            "requested": self.requested,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "requests_per_second": round(self.sent / self.seconds, 1) if self.seconds else 0.0,
            "latency_p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
            "latency_p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
            "stopped_by_time": self.stopped_by_time,
            "error_samples": self.error_samples[:5],
        }


def send(
    url: str,
    endpoint: str,
    bodies: list[bytes],
    rate: float | None = None,
    concurrency: int = 4,
    max_seconds: float = 300.0,
    on_answer: Callable[[bool], None] | None = None,
) -> TrafficResult:
    """POST each body to ``url`` (loopback only), at most ``rate`` a second, until done or
    ``max_seconds`` have passed; ``on_answer(ok)`` after each request."""
    loadgen.check_local(url)
    run = uuid.uuid4().hex[:8]
    result = TrafficResult(endpoint, len(bodies))
    result.inference_ids = [f"traffic-{run}-{number}" for number in range(len(bodies))]
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))
    start = time.monotonic()
    deadline = start + max_seconds

    def worker() -> None:
        while True:
            with lock:
                number = next(cursor, None)
            if number is None:
                return
            if rate is not None:  # request k leaves at start + k / rate
                time.sleep(max(0.0, start + number / rate - time.monotonic()))
            if time.monotonic() >= deadline:
                with lock:
                    result.stopped_by_time = True
                return
            began = time.monotonic()
            try:
                loadgen.post(
                    url, bodies[number], "image/png",
                    {"Accept": "application/json",
                     INFERENCE_ID_HEADER: result.inference_ids[number]},
                )  # fmt: skip
                ok, problem = True, ""
            except urllib.error.HTTPError as error:
                ok, problem = (
                    False,
                    f"HTTP {error.code}: {error.read()[:200].decode(errors='replace')}",
                )
            except (urllib.error.URLError, OSError) as error:
                ok, problem = False, repr(error)
            with lock:
                result.sent += 1
                if ok:
                    result.ok += 1
                    result.latencies.append(time.monotonic() - began)
                else:
                    result.errors += 1
                    result.error_samples.append(problem)
            if on_answer:
                on_answer(ok)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max_seconds + 60)
    result.seconds = time.monotonic() - start
    return result
