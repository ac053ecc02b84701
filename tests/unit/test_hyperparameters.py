"""Hyperparameters: both code roots allow the same values, and `run` refuses bad ones up front."""

from __future__ import annotations

import json
import sys
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from local_mlops.cli.app import app
from local_mlops.config import load_settings
from local_mlops.errors import LocalMlopsError
from local_mlops.pipeline import graph, hyperparameters, runner

CONTAINERS = Path(__file__).parents[2] / "containers"
if str(CONTAINERS) not in sys.path:
    sys.path.insert(0, str(CONTAINERS))

from mlops_container import hyperparameters as image_side  # noqa: E402

cli = CliRunner()


def test_both_sides_allow_the_same_names_types_ranges_and_choices() -> None:
    hints = typing.get_type_hints(image_side.Hyperparameters)
    image_types = {f.name: hints[f.name] for f in fields(image_side.Hyperparameters)}
    ours = hyperparameters.ALLOWED
    assert set(ours) == set(image_types)
    assert {name: rule.kind for name, rule in ours.items()} == image_types
    assert {n: r.choices for n, r in ours.items() if r.kind is str} == image_side.CHOICES
    assert {n: (r.low, r.high) for n, r in ours.items() if r.kind is not str} == image_side.RANGES


def test_the_tuning_ranges_lie_inside_the_allowed_values() -> None:
    """Every value `run --tune` can hand a trial is one the image accepts."""
    shown = cli.invoke(app, ["pipeline", "show", "--tune"])
    assert shown.exit_code == 0, shown.output
    steps = json.loads(shown.stdout)["Steps"]
    tuning = next(s for s in steps if s["Type"] == "Tuning")
    ranges = tuning["Arguments"]["HyperParameterTuningJobConfig"]["ParameterRanges"]
    checked = 0
    for item in ranges["ContinuousParameterRanges"] + ranges["IntegerParameterRanges"]:
        rule = hyperparameters.ALLOWED[item["Name"]]
        assert rule.problem(item["MinValue"]) is None and rule.problem(item["MaxValue"]) is None
        checked += 1
    for item in ranges["CategoricalParameterRanges"]:
        assert all(hyperparameters.ALLOWED[item["Name"]].problem(v) is None for v in item["Values"])
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--epochs", "0"],
            "--epochs 0 (the flag) is out of range: it must be an integer from 1 to 10000",
        ),
        (["--epochs", "-1"], "--epochs -1 (the flag) is out of range"),
        (
            ["--backbone", "nosuch"],
            "--backbone nosuch (the flag) is not allowed: it must be one of resnet18, mobilenet_v3_small",
        ),
        (
            ["--learning-rate", "-0.01"],
            "--learning-rate -0.01 (the flag) is out of range: it must be a number from 1e-08 to 10",
        ),
        (
            ["--threshold", "1.5"],
            "--threshold 1.5 (the flag) is out of range: it must be a number from 0 to 1",
        ),
        (
            ["--instance-count", "9"],
            "--instance-count 9 (the flag) is out of range: it must be an integer from 1 to 8",
        ),
        (
            ["--instance-count", "0"],
            "--instance-count 0 (the flag) is out of range: it must be an integer from 1 to 8",
        ),
    ],
)
def test_run_refuses_bad_values_before_anything_starts(args: list[str], expected: str) -> None:
    result = cli.invoke(app, ["run", *args])

    assert result.exit_code == 1, result.output
    assert f"error: {expected}" in result.output
    assert "fix: pass " + args[0] in result.output
    assert "S3 emulator" not in result.output and "pipeline" not in result.output
    assert "Traceback" not in result.output


def test_a_bad_value_from_the_environment_names_its_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_MLOPS_EPOCHS", "0")
    result = cli.invoke(app, ["run"])
    assert result.exit_code == 1
    assert "--epochs 0 (from env LOCAL_MLOPS_EPOCHS) is out of range" in result.output


def test_the_library_refuses_bad_pipeline_parameters() -> None:
    settings = load_settings(environ={})
    with pytest.raises(LocalMlopsError, match="pipeline parameter Epochs"):
        runner.run(settings, runner.RunOptions(parameters={"Epochs": 0}))
    with pytest.raises(LocalMlopsError, match="--instance-count 12 .pipeline parameter Training"):
        runner.run(settings, runner.RunOptions(parameters={"TrainingInstanceCount": 12}))


def fake_run(seen: dict[str, Any]) -> Any:
    """Stands in for the pipeline: one step event for the live table, then a failure."""

    def run(settings: Any, options: Any, say: Any, on_step_event: Any) -> Any:
        seen["settings"], seen["options"] = settings, options
        on_step_event("exec-1", graph.VALIDATE, "Executing", {})
        raise LocalMlopsError("the emulator went away", "local-mlops up")

    return run


def test_learning_rate_flag_reaches_the_run_and_errors_get_their_own_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(runner, "run", fake_run(seen))

    result = cli.invoke(app, ["run", "--learning-rate", "0.05"])

    assert result.exit_code == 1
    assert seen["settings"].learning_rate == 0.05
    assert seen["options"].parameters["LearningRate"] == 0.05
    lines = result.output.splitlines()
    error_line = next(line for line in lines if "the emulator went away" in line)
    assert error_line.startswith("error: "), lines
    border = lines[lines.index(error_line) - 1]
    assert border.startswith("└") or border.strip() == "", lines


def test_instance_count_flag_reaches_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(runner, "run", fake_run(seen))
    assert cli.invoke(app, ["run", "--instance-count", "2"]).exit_code == 1
    assert seen["options"].parameters["TrainingInstanceCount"] == 2
    assert cli.invoke(app, ["run"]).exit_code == 1
    assert seen["options"].parameters["TrainingInstanceCount"] == 1
