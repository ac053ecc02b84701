"""One graph for both targets: only session values differ between local and cloud."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local_mlops.config import load_settings
from local_mlops.pipeline import graph
from local_mlops.targets import definition_session

ROOT = Path(__file__).resolve().parents[2]
EMPTY = ROOT / "tests" / "data" / "empty.toml"


def definition(target: str, tune: bool = False) -> dict[str, Any]:
    settings = load_settings({"target": target}, config_file=EMPTY, environ={})
    pipeline = graph.build_pipeline(settings, definition_session(settings), tune=tune)
    return json.loads(pipeline.definition())


def shape(steps: list[dict[str, Any]]) -> list[tuple[str, str, tuple[str, ...]]]:
    """Name, type and dependencies of every step, condition branches included."""
    found = []
    for step in steps:
        found.append((step["Name"], step["Type"], tuple(sorted(step.get("DependsOn", [])))))
        args = step.get("Arguments", {})
        found += shape(args.get("IfSteps", [])) + shape(args.get("ElseSteps", []))
    return found


@pytest.mark.parametrize("tune", [False, True])
def test_local_and_cloud_graphs_have_the_same_steps_parameters_and_condition(tune: bool) -> None:
    local, cloud = definition("local", tune), definition("cloud", tune)
    assert shape(local["Steps"]) == shape(cloud["Steps"])
    assert [p["Name"] for p in local["Parameters"]] == [p["Name"] for p in cloud["Parameters"]]
    condition = [s for s in local["Steps"] if s["Type"] == "Condition"]
    assert condition == [s for s in cloud["Steps"] if s["Type"] == "Condition"]


def test_only_session_values_differ() -> None:
    local, cloud = definition("local"), definition("cloud")
    instance_types = {"ProcessingInstanceType", "TrainingInstanceType"}
    for parameter in cloud["Parameters"]:
        if parameter["Name"] in instance_types:
            assert parameter["DefaultValue"].startswith("ml.")
            parameter["DefaultValue"] = "local"
    assert local == cloud


def test_step_names_and_the_else_branch() -> None:
    steps = definition("cloud")["Steps"]
    names = [s["Name"] for s in steps]
    assert names == [
        graph.VALIDATE,
        graph.PREPROCESS,
        graph.TRAIN,
        graph.EVALUATE,
        graph.CHECK,
    ]
    check = steps[-1]["Arguments"]
    assert [s["Name"] for s in check["ElseSteps"]] == [graph.FAIL]
    assert {s["Type"] for s in check["IfSteps"]} == {"RegisterModel", "Model"}


def test_register_attaches_the_evaluate_steps_baseline_as_drift_check_baselines() -> None:
    steps = definition("cloud")["Steps"]
    evaluate = next(s for s in steps if s["Name"] == graph.EVALUATE)["Arguments"]
    sources = [json.dumps(i["S3Input"]["S3Uri"]) for i in evaluate["ProcessingInputs"]]
    assert any(f"Steps.{graph.PREPROCESS}" in s and "validation" in s for s in sources)
    outputs = [o["OutputName"] for o in evaluate["ProcessingOutputConfig"]["Outputs"]]
    assert outputs == ["evaluation", "baseline"]
    assert evaluate["AppSpecification"]["ContainerArguments"] == [
        "--validation-dir",
        "/opt/ml/processing/validation",
        "--baseline-dir",
        "/opt/ml/processing/baseline",
    ]
    register = next(s for s in steps[-1]["Arguments"]["IfSteps"] if s["Type"] == "RegisterModel")
    baselines = register["Arguments"]["DriftCheckBaselines"]
    data = json.dumps(baselines["ModelDataQuality"])
    assert f"Steps.{graph.EVALUATE}.ProcessingOutputConfig" in data
    assert "statistics.json" in data and "constraints.json" in data
    assert "model_quality_constraints.json" in json.dumps(baselines["ModelQuality"])


def test_tuning_replaces_training_and_feeds_evaluate_with_the_best_model() -> None:
    steps = {s["Name"]: s for s in definition("cloud", tune=True)["Steps"]}
    assert graph.TRAIN not in steps and steps[graph.TUNE]["Type"] == "Tuning"
    tuning = steps[graph.TUNE]["Arguments"]["HyperParameterTuningJobConfig"]
    assert tuning["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "val_accuracy",
    }
    assert graph.TUNE in json.dumps(steps[graph.EVALUATE]["Arguments"]["ProcessingInputs"])


def test_every_parameter_and_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "pipeline.md").read_text()
    settings = load_settings(config_file=EMPTY, environ={})
    target = definition_session(settings)
    missing = [name for name in graph.build_parameters(settings, target) if f"`{name}`" not in doc]
    missing += [name for name, _, _ in settings.public_items() if f"`{name}`" not in doc]
    missing += [
        name
        for name in (
            graph.VALIDATE,
            graph.PREPROCESS,
            graph.TRAIN,
            graph.TUNE,
            graph.EVALUATE,
            graph.CHECK,
            graph.REGISTER,
            graph.CREATE_MODEL,
            graph.FAIL,
        )
        if f"`{name}`" not in doc
    ]
    assert missing == []


def test_jobs_run_the_runtime_image_and_models_the_serving_image() -> None:
    settings = load_settings({"target": "local"}, config_file=EMPTY, environ={})
    steps = definition("local")["Steps"]
    check = steps[-1]["Arguments"]
    jobs = [s for s in steps if s["Type"] in ("Processing", "Training")]
    assert {json.dumps(s["Arguments"]).count(settings.image_uri) > 0 for s in jobs} == {True}
    models = {s["Type"]: json.dumps(s["Arguments"]) for s in check["IfSteps"]}
    assert set(models) == {"RegisterModel", "Model"}
    for arguments in models.values():
        assert settings.serving_image_uri in arguments and settings.image_uri not in arguments


def test_registered_content_types_are_the_ones_the_server_reads() -> None:
    from mlops_container.serving import decoding

    assert list(decoding.CONTENT_TYPES) == graph.CONTENT_TYPES


def batch_definition(target: str, batch_input: str) -> dict[str, Any]:
    settings = load_settings({"target": target}, config_file=EMPTY, environ={})
    pipeline = graph.build_pipeline(settings, definition_session(settings), batch_input=batch_input)
    return json.loads(pipeline.definition())


def test_batch_score_and_its_parameter_come_only_with_a_batch_input() -> None:
    plain, scored = definition("local"), batch_definition("local", "s3://local-mlops/in/")
    assert graph.BATCH_SCORE not in json.dumps(plain) and "BatchInput" not in json.dumps(plain)
    parameter = next(p for p in scored["Parameters"] if p["Name"] == "BatchInput")
    assert parameter["DefaultValue"] == "s3://local-mlops/in/"
    if_steps = scored["Steps"][-1]["Arguments"]["IfSteps"]
    assert [s["Type"] for s in if_steps] == ["RegisterModel", "Model", "Transform"]
    step = if_steps[-1]
    assert step["Name"] == graph.BATCH_SCORE
    arguments = step["Arguments"]
    assert arguments["ModelName"] == {"Get": f"Steps.{if_steps[1]['Name']}.ModelName"}
    assert arguments["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == {
        "Get": "Parameters.BatchInput"
    }
    assert "SplitType" not in arguments["TransformInput"]  # whole files
    assert arguments["BatchStrategy"] == "MultiRecord"
    assert arguments["TransformOutput"]["Accept"] == "application/json"
    output = json.dumps(arguments["TransformOutput"]["S3OutputPath"])
    assert "pipelines/local-mlops-pipeline/batch" in output and "PipelineExecutionId" in output
    # Without the step, everything else is unchanged.
    scored["Parameters"] = [p for p in scored["Parameters"] if p["Name"] != "BatchInput"]
    scored["Steps"][-1]["Arguments"]["IfSteps"] = if_steps[:-1]
    assert scored == plain


def test_batch_score_local_and_cloud_differ_only_in_session_values() -> None:
    local = batch_definition("local", "s3://local-mlops/in/")
    cloud = batch_definition("cloud", "s3://local-mlops/in/")
    for parameter in cloud["Parameters"]:
        if parameter["Name"] in {"ProcessingInstanceType", "TrainingInstanceType"}:
            parameter["DefaultValue"] = "local"
    score = cloud["Steps"][-1]["Arguments"]["IfSteps"][-1]["Arguments"]
    assert score["TransformResources"]["InstanceType"].startswith("ml.")
    score["TransformResources"]["InstanceType"] = "local"
    assert local == cloud


@pytest.mark.parametrize("target", ["local", "cloud"])
def test_every_job_runs_with_network_isolation(target: str) -> None:
    steps = {s["Name"]: s for s in definition(target)["Steps"]}
    for name in ("ValidateData", "Preprocess", "Evaluate"):
        network = steps[name]["Arguments"].get("NetworkConfig") or {}
        assert network.get("EnableNetworkIsolation") is True, name
    assert steps["Train"]["Arguments"]["EnableNetworkIsolation"] is True
    tuned = {s["Name"]: s for s in definition(target, tune=True)["Steps"]}["Tune"]
    assert tuned["Arguments"]["TrainingJobDefinition"]["EnableNetworkIsolation"] is True
