"""Following a SageMaker execution: status polls, step changes reported once each.

moto's executions are Succeeded at once, so the polling itself is shown here with an execution
that advances one step per poll, as SageMaker's do.
"""

from __future__ import annotations

from typing import Any

import pytest

from local_mlops.config import load_settings
from local_mlops.targets import cloud

ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abc123"


class AdvancingExecution:
    """Executing for two polls (Train running, then Evaluate), then Succeeded."""

    arn = ARN

    def __init__(self) -> None:
        self.polls = 0

    def describe(self) -> dict[str, Any]:
        self.polls += 1
        status = "Executing" if self.polls <= 2 else "Succeeded"
        return {"PipelineExecutionArn": ARN, "PipelineExecutionStatus": status}

    def list_steps(self) -> list[dict[str, Any]]:
        running = "Executing" if self.polls <= 1 else "Succeeded"
        steps = [{"StepName": "Train", "StepStatus": running}]
        if self.polls >= 2:
            steps.insert(0, {"StepName": "Evaluate", "StepStatus": "Executing"})
        if self.polls >= 3:
            steps[0]["StepStatus"] = "Succeeded"
        return steps


def test_follow_polls_until_the_end_and_reports_each_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(cloud.time, "sleep", sleeps.append)
    events: list[tuple[str, str]] = []
    said: list[str] = []
    target = cloud.definition_target(load_settings({"target": "cloud"}))
    execution = AdvancingExecution()

    steps = target.wait(
        execution,
        ["Train", "Evaluate"],
        said.append,
        lambda _, n, s, __: events.append((n, s)),
    )

    assert sleeps == [cloud.POLL_SECONDS, cloud.POLL_SECONDS]
    assert events == [
        ("Train", "Executing"),
        ("Evaluate", "Executing"),
        ("Train", "Succeeded"),
        ("Evaluate", "Succeeded"),
    ]
    assert {s["StepStatus"] for s in steps} == {"Succeeded"}
    assert "executions/abc123" in said[0]
