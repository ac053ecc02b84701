"""The training instance count in the run summary and in `runs describe`."""

from __future__ import annotations

from rich.console import Console

from local_mlops.cli import run_cmd, runs_cmd
from local_mlops.pipeline import runner


def test_the_run_summary_shows_the_instance_count() -> None:
    result = runner.RunResult(
        execution_arn="arn:local:exec-1",
        status="Succeeded",
        failure_reason="",
        steps=[],
        seconds=12.0,
        target="local",
        console_url="local-mlops runs describe exec-1",
        instance_count=2,
    )
    console = Console(width=120, record=True)
    console.print(run_cmd._summary(result))
    line = next(li for li in console.export_text().splitlines() if "training instances" in li)
    assert line.split("│")[2].strip() == "2"


def test_runs_describe_reads_the_instance_count_of_either_target() -> None:
    assert runs_cmd.instance_count({"Parameters": {"TrainingInstanceCount": 2}}) == 2  # local
    assert runs_cmd.instance_count({"Parameters": {"TrainingInstanceCount": "3"}}) == 3  # cloud
    assert runs_cmd.instance_count({"Parameters": {}}) == 1  # not passed: the default
    assert runs_cmd.instance_count({}) == 1
