"""The main job's first monitoring report (the ``first_report`` setting).

Once ``auto_approve`` has deployed a run's version to a local endpoint, a small bounded burst of
clean requests drawn from that run's test split goes through the router (``traffic.py``), the
router's capture buffer is flushed, and one monitoring job (``run.py``) compares the captured
window (from the deployment on) with the version's baseline. So the dashboard's Monitoring page has a real report to show
the moment the main job ends, made by the same code as ``traffic`` and ``monitor run``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError
from local_mlops.monitoring import traffic
from local_mlops.monitoring.run import run_monitor, window_bounds
from local_mlops.s3 import s3_client
from local_mlops.serving import daemon

Say = Callable[[str], None]
REQUESTS = 48  # a few dozen: enough for a report, cheap next to the run
CONCURRENCY = 4
MAX_SECONDS = 60.0
SEED = 0  # the same requests every time


def first_report(
    settings: Settings,
    target: Any,
    endpoint: str,
    say: Say,
    requests: int = REQUESTS,
    since: datetime | None = None,
) -> dict[str, Any]:
    """Send ``requests`` clean requests to the local ``endpoint``, then run one monitoring job
    over what it captured from ``since`` (the run's deployment; default: the burst's start) to
    now; the traffic summary and the report (`monitor run`'s).

    Only this version's requests are in the window: the last hour (``monitor run``'s default)
    would also hold an earlier run's traffic, or drifted requests sent to the version before,
    and flag them against this version's baseline.
    """
    from local_mlops.targets.endpoints import local_invocations_url

    began = time.monotonic()
    url = local_invocations_url(settings, endpoint)
    client = s3_client(settings, target.s3_endpoint)
    key, document = traffic.endpoint_split(settings, client, endpoint)
    images, labels = traffic.load_split(client, settings.bucket, key)
    bodies, _ = traffic.draw(images, labels, requests, None, None, SEED)
    since = since or datetime.now(UTC)
    say(f"first_report: sending {requests} requests from the test split to {endpoint} ...")
    sent = traffic.send(url, endpoint, bodies, concurrency=CONCURRENCY, max_seconds=MAX_SECONDS)
    daemon.flush_router(settings)
    if sent.ok == 0:
        samples = "; ".join(sent.error_samples[:2]) or "no answer"
        raise LocalMlopsError(
            f"first_report: the endpoint {endpoint} answered none of {requests} requests ({samples})",
            f"read its log: local-mlops endpoints logs {endpoint}",
        )
    now = datetime.now(UTC)
    _, end = window_bounds(now, timedelta(0))
    window = end - since.replace(microsecond=0)
    report = run_monitor(settings, target, endpoint, window, document.version, say, now=now)
    return {
        "traffic": sent.summary() | {"test_split": f"s3://{settings.bucket}/{key}"},
        "report": report,
        "seconds": round(time.monotonic() - began, 1),
    }


def one_line(result: dict[str, Any]) -> str:
    """The report in one line: records, violations (or none), where it is."""
    report = result["report"]
    features = report.get("violated_features") or []
    found = (
        f"{report['violation_count']} violations ({', '.join(features)})"
        if report["violation_count"]
        else "no violations"
    )
    return (
        f"first monitoring report: {report['records']} records, {found}; "
        f"{report['report_uri']} ({result['seconds']:.1f} s)"
    )
