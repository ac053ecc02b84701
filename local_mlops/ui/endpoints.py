"""The Endpoints pages: each endpoint's variants, weights and versions, an update in progress,
and the router's requests, latency and errors over time (``serving.metrics``)."""

from __future__ import annotations

import re
from typing import Any

from local_mlops.serving.metrics import percentile
from local_mlops.ui.charts import Series, line_chart

TRANSITIONAL = ("Creating", "Updating", "RollingBack", "Deleting")
FLEET_VERSION = re.compile(r"^v(\d+)-")
PERCENTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
WINDOW_SECONDS = 600  # the charts show at least the last 10 minutes


def _quiet(_: str) -> None:
    """Reading endpoints says nothing worth showing."""


def endpoint_rows(settings: Any) -> list[dict[str, Any]]:
    """Every endpoint as ``endpoints list --json`` gives it."""
    from local_mlops.targets import endpoints

    return list(endpoints.list_endpoints(settings, _quiet))


def describe(settings: Any, name: str) -> dict[str, Any]:
    from local_mlops.targets import endpoints

    return dict(endpoints.describe_endpoint(settings, name, _quiet))


def metrics(settings: Any) -> dict[str, Any] | None:
    """The router's timeline; None when no router runs (or it does not answer)."""
    from local_mlops.errors import LocalMlopsError
    from local_mlops.targets import endpoints

    try:
        return endpoints.endpoint_metrics(settings)
    except LocalMlopsError:
        return None


def version_of(fleet_id: str, known: dict[str, int]) -> str:
    if fleet_id in known:
        return f"v{known[fleet_id]}"
    match = FLEET_VERSION.match(fleet_id)
    return f"v{match[1]}" if match else fleet_id


def update_state(view: dict[str, Any]) -> dict[str, Any] | None:
    """The blue/green update in progress (or the last one), for the page's update panel."""
    document = view.get("document") or {}
    last = document.get("last_deployment") or {}
    if not last:
        return None
    fleets = [
        {
            "variant": v["name"],
            "version": f["version"],
            "weight": float(f.get("weight", 0.0)),
            "instances": len(f.get("instances") or []),
        }
        for v in document.get("variants") or []
        for f in v.get("fleets") or []
    ]
    return {
        "in_progress": document.get("status") in TRANSITIONAL or last.get("status") == "InProgress",
        "status": last.get("status", ""),
        "version": last.get("version"),
        "from_version": last.get("from_version"),
        "reason": last.get("reason", ""),
        "time": last.get("time", ""),
        "fleets": fleets,
    }


def timeline_charts(timeline: dict[str, Any] | None, view: dict[str, Any]) -> list[str]:
    """Request rate per version, latency percentiles and error rate, over the router's buckets."""
    if not timeline:
        return []
    name = view["name"]
    known = {
        f["id"]: int(f["version"])
        for v in (view.get("document") or {}).get("variants") or []
        for f in v.get("fleets") or []
    }
    width = float(timeline["bucket_seconds"])
    bounds = timeline["latency_bounds_ms"]
    rates: dict[str, dict[float, float]] = {}
    merged: dict[float, list[Any]] = {}  # start -> [requests, errors, histogram]
    for series in timeline["series"]:
        if series["endpoint"] != name:
            continue
        label = f"{version_of(series['fleet'], known)} ({series['variant']})"
        for bucket in series["buckets"]:
            start = float(bucket["start"]) + width / 2
            rate = rates.setdefault(label, {})
            rate[start] = rate.get(start, 0.0) + bucket["requests"] / width
            total = merged.setdefault(start, [0, 0, [0] * len(bucket["latency"])])
            total[0] += bucket["requests"]
            total[1] += bucket["errors"]
            total[2] = [a + b for a, b in zip(total[2], bucket["latency"], strict=True)]
    if not merged:
        return []
    times = sorted(merged)
    rate_series = [Series(label, sorted(points.items())) for label, points in sorted(rates.items())]
    latency_series = []
    for label, q in PERCENTILES:
        points = [(t, percentile(merged[t][2], q, bounds)) for t in times]
        latency_series.append(Series(label, [(t, v) for t, v in points if v is not None]))
    errors = [(t, 100.0 * merged[t][1] / merged[t][0]) for t in times if merged[t][0]]
    span = f"per {width:g} s"
    now = float(timeline["now"])
    window = (min(times[0] - width / 2, now - WINDOW_SECONDS), now)
    top_rate = max(v for points in rates.values() for v in points.values())
    top_latency = max((v for s in latency_series for _, v in s.points), default=1.0)
    return [
        line_chart(
            rate_series,
            title=f"request rate by version ({span})",
            x_label="time (UTC)",
            y_label="requests per second",
            y_range=(0.0, top_rate * 1.1),
            x_time=True,
            x_range=window,
        ),
        line_chart(
            latency_series,
            title=f"latency percentiles at the router ({span})",
            x_label="time (UTC)",
            y_label="latency (ms)",
            y_range=(0.0, top_latency * 1.1),
            x_time=True,
            x_range=window,
        ),
        line_chart(
            [Series("5xx and unanswered", errors)],
            title=f"error rate ({span})",
            x_label="time (UTC)",
            y_label="errors (% of requests)",
            y_range=(0.0, max(5.0, max(e for _, e in errors))),
            x_time=True,
            x_range=window,
        ),
    ]


def totals(timeline: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """Requests, errors and the p95 over the whole timeline, for the page's facts."""
    requests = errors = 0
    histogram: list[int] = []
    for series in (timeline or {}).get("series", []):
        if series["endpoint"] != name:
            continue
        for bucket in series["buckets"]:
            requests += bucket["requests"]
            errors += bucket["errors"]
            histogram = (
                [a + b for a, b in zip(histogram, bucket["latency"], strict=True)]
                if histogram
                else list(bucket["latency"])
            )
    bounds = (timeline or {}).get("latency_bounds_ms") or []
    p95 = percentile(histogram, 0.95, bounds) if histogram else None
    return {"requests": requests, "errors": errors, "p95": p95}


def recent_traffic(timeline: dict[str, Any] | None, name: str, seconds: float = 60) -> bool:
    """Whether the endpoint answered within the last ``seconds`` (the page then stays live)."""
    if not timeline:
        return False
    since = float(timeline["now"]) - seconds
    return any(
        b["start"] >= since
        for s in timeline["series"]
        if s["endpoint"] == name
        for b in s["buckets"]
    )
