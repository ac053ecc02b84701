"""The product's graph end to end in Docker on digits: register, cache, fail gate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from local_mlops import graph, runner
from local_mlops.config import Settings

pytestmark = pytest.mark.docker


def statuses(result: runner.RunResult) -> dict[str, str]:
    return {s["StepName"]: s["StepStatus"] for s in result.steps}


def test_digits_runs_registers_then_reruns_from_cache_and_fails_the_gate(
    runtime_image: str, s3: tuple[Settings, str]
) -> None:
    base, url = s3
    settings = replace(base, s3_endpoint=url, backbone="mobilenet_v3_small", epochs=1)
    low = runner.RunOptions(
        parameters={"Epochs": 1, "Backbone": "mobilenet_v3_small", "AccuracyThreshold": 0.0}
    )

    first = runner.run(settings, low, say=print)

    assert first.succeeded, first.failure_reason
    done = statuses(first)
    for step in (graph.VALIDATE, graph.PREPROCESS, graph.TRAIN, graph.EVALUATE, graph.CHECK):
        assert done[step] == "Succeeded"
    assert first.model_package is not None
    assert first.model_package["ModelPackageVersion"] == 1
    assert first.model_package["ModelApprovalStatus"] == "PendingManualApproval"
    assert 0.0 <= first.metrics["accuracy"] <= 1.0

    high = replace(low, parameters=low.parameters | {"AccuracyThreshold": 1.01})
    second = runner.run(settings, high, say=print)

    assert second.status == "Failed"
    assert "below the threshold 1.01" in second.failure_reason
    cached = {s["StepName"] for s in second.steps if s.get("CacheHitResult")}
    assert {graph.VALIDATE, graph.PREPROCESS, graph.TRAIN, graph.EVALUATE} <= cached
    assert second.seconds < first.seconds
