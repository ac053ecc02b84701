"""The router's timeline: requests, errors and latency per fleet in 10 s buckets, for an hour."""

from __future__ import annotations

import json
import urllib.request

import pytest
from serving_fakes import FakeModel, RouterThread, one_fleet_endpoint, runtime

from local_mlops.serving import state as st
from local_mlops.serving.metrics import LATENCY_BOUNDS_MS, Timeline, percentile


def test_buckets_count_requests_and_errors_and_forget_after_an_hour() -> None:
    now = [1_000_000.0]
    timeline = Timeline(clock=lambda: now[0])
    for latency in (0.002, 0.004, 0.100):
        timeline.record("digits", "AllTraffic", "v1-aaaa", latency, error=False)
    timeline.record("digits", "AllTraffic", "v1-aaaa", 0.050, error=True)
    now[0] += 10
    timeline.record("digits", "AllTraffic", "v2-bbbb", 0.003, error=False)
    snap = timeline.snapshot()
    [v1, v2] = snap["series"]
    assert (v1["fleet"], v2["fleet"]) == ("v1-aaaa", "v2-bbbb")
    assert v1["buckets"][0]["requests"] == 4 and v1["buckets"][0]["errors"] == 1
    assert v2["buckets"][0]["start"] - v1["buckets"][0]["start"] == 10
    p50 = percentile(v1["buckets"][0]["latency"], 0.5, snap["latency_bounds_ms"])
    p99 = percentile(v1["buckets"][0]["latency"], 0.99, snap["latency_bounds_ms"])
    assert p50 is not None and 4.0 <= p50 <= 4.0 * 1.19
    assert p99 is not None and 100.0 <= p99 <= 100.0 * 1.19
    now[0] += 3601
    assert timeline.snapshot()["series"] == []


def test_percentile_of_nothing_is_none_and_above_the_bounds_is_the_last_bound() -> None:
    empty = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    assert percentile(empty, 0.5, LATENCY_BOUNDS_MS) is None
    slow = list(empty)
    slow[-1] = 3
    assert percentile(slow, 0.5, LATENCY_BOUNDS_MS) == LATENCY_BOUNDS_MS[-1]


def test_the_router_serves_its_timeline_with_model_errors_counted(
    store: st.EndpointStore, router: RouterThread, model: FakeModel
) -> None:
    one_fleet_endpoint(store, "digits", [model])
    router.reload()
    client = runtime(router.url)
    for _ in range(3):
        client.invoke_endpoint(EndpointName="digits", Body=b"x", ContentType="image/png")
    model.status = 500
    with pytest.raises(client.exceptions.ModelError):
        client.invoke_endpoint(EndpointName="digits", Body=b"x", ContentType="image/png")
    with urllib.request.urlopen(f"{router.url}/_local-mlops/metrics", timeout=10) as reply:
        snap = json.loads(reply.read())
    [series] = snap["series"]
    assert (series["endpoint"], series["variant"], series["fleet"]) == (
        "digits",
        "AllTraffic",
        "v1-aaaa",
    )
    assert sum(b["requests"] for b in series["buckets"]) == 4
    assert sum(b["errors"] for b in series["buckets"]) == 1
    assert snap["bucket_seconds"] == 10
