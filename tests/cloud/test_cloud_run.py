"""``local-mlops run --cloud`` against moto's SageMaker, S3, IAM, STS and ECR APIs.

moto stores pipelines and executions without running them: an execution is Succeeded at once and
ListPipelineExecutionSteps answers HTTP 500, which the run must survive.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from cloudkit import IMAGE_URI, PIPELINE, SERVING_URI, FakeEngine, NetworkLog
from cloudkit import flat as _flat
from cloudkit import image_already_in_ecr as _image_already_in_ecr
from typer.testing import CliRunner

from local_mlops.cli.app import app

runner = CliRunner()


def _images(definition: dict[str, Any]) -> set[str]:
    """Every image URI the definition's jobs run (processing, training, models)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("ImageUri", "TrainingImage", "Image") and isinstance(value, str):
                    found.add(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(definition)
    return found


def _shape(definition: dict[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    steps = [s["Name"] for s in definition["Steps"]]
    parameters = [(p["Name"], p["Type"]) for p in definition["Parameters"]]
    return steps, parameters


def test_run_cloud_upserts_starts_and_follows(
    cloud_env: boto3.Session, engine: FakeEngine, network_log: NetworkLog
) -> None:
    _image_already_in_ecr(cloud_env, engine)

    result = runner.invoke(app, ["run", "--cloud", "--yes", "--json"])

    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    sagemaker = cloud_env.client("sagemaker")
    executions = sagemaker.list_pipeline_executions(PipelineName=PIPELINE)
    arns = [e["PipelineExecutionArn"] for e in executions["PipelineExecutionSummaries"]]
    assert arns == [run["execution_arn"]]
    assert run["status"] == "Succeeded"
    assert run["target"] == "cloud"
    execution_id = run["execution_arn"].rsplit("/", 1)[-1]
    assert f"pipelines/{PIPELINE}/executions/{execution_id}" in run["console_url"]
    # moto cannot list the steps: they are reported as unknown, and the run still completes.
    assert {s["StepStatus"] for s in run["steps"]} == {"Unknown"}
    assert "Cannot list the execution's steps" in _flat(result.stderr)
    assert "HTTP 500" in _flat(result.stderr)
    assert run["console_url"] in result.stderr.replace("\n", "")

    # The stored definition is the one `pipeline show --cloud` prints, with the ECR image.
    stored = json.loads(sagemaker.describe_pipeline(PipelineName=PIPELINE)["PipelineDefinition"])
    shown = runner.invoke(app, ["pipeline", "show", "--cloud"])
    assert shown.exit_code == 0, shown.output
    assert _shape(stored) == _shape(json.loads(shown.stdout))
    assert _images(stored) == {IMAGE_URI, SERVING_URI}  # jobs; registered model and CreateModel
    assert sagemaker.describe_pipeline(PipelineName=PIPELINE)["RoleArn"].endswith(
        "role/LocalMlopsExecutionRole"
    )

    # The images were already in ECR with these digests: no login, no push.
    assert f"{IMAGE_URI} is already in ECR" in _flat(result.stderr)
    assert f"{SERVING_URI} is already in ECR" in _flat(result.stderr)
    assert engine.logins == [] and engine.pushes == []

    # Every AWS call went to the emulator; nothing (telemetry included) tried to leave.
    assert network_log.botocore_urls
    assert network_log.off_emulator() == []
    assert network_log.refused == []


def test_runs_list_and_describe_cloud(
    cloud_env: boto3.Session, engine: FakeEngine, network_log: NetworkLog
) -> None:
    _image_already_in_ecr(cloud_env, engine)
    first = runner.invoke(app, ["run", "--cloud", "--yes", "--json", "--instance-count", "2"])
    assert first.exit_code == 0, first.output
    arn = json.loads(first.stdout)["execution_arn"]
    assert json.loads(first.stdout)["instance_count"] == 2
    execution_id = arn.rsplit("/", 1)[-1]

    listed = runner.invoke(app, ["runs", "list", "--cloud", "--json"])
    assert listed.exit_code == 0, listed.output
    records = json.loads(listed.stdout)
    assert [(r["ExecutionId"], r["Status"]) for r in records] == [(execution_id, "Succeeded")]
    assert records[0]["FailureReason"] == ""

    described = runner.invoke(app, ["runs", "describe", execution_id, "--cloud", "--json"])
    assert described.exit_code == 0, described.output
    record = json.loads(described.stdout)
    assert record["PipelineExecutionArn"] == arn
    assert record["Steps"] == []
    assert "HTTP 500" in record["StepsUnavailable"]
    assert record["Parameters"]["TrainingInstanceCount"] == "2"

    shown = runner.invoke(app, ["runs", "describe", execution_id, "--cloud"])
    assert "training instances: 2" in shown.stdout, shown.output

    table = runner.invoke(app, ["runs", "list", "--cloud"])
    assert table.exit_code == 0, table.output
    assert execution_id in table.stdout

    missing = runner.invoke(app, ["runs", "describe", "nosuchexecution", "--cloud"])
    assert missing.exit_code == 1
    assert "no execution 'nosuchexecution'" in _flat(missing.stderr)
    assert network_log.off_emulator() == [] and network_log.refused == []


def test_models_list_cloud_reads_the_sagemaker_registry(
    cloud_env: boto3.Session, network_log: NetworkLog
) -> None:
    sagemaker = cloud_env.client("sagemaker")
    group = "local-mlops-image-classifier"
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    container = {"Image": IMAGE_URI, "ModelDataUrl": "s3://b/model.tar.gz"}
    for _ in range(2):
        sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [container],
                "SupportedContentTypes": ["image/png"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        )

    empty = runner.invoke(app, ["models", "list", "--cloud", "--json", "--group", "nothing"])
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.stdout) == []

    listed = runner.invoke(app, ["models", "list", "--cloud", "--json"])
    assert listed.exit_code == 0, listed.output
    packages = json.loads(listed.stdout)
    assert [p["ModelPackageVersion"] for p in packages] == [1, 2]
    assert {p["ModelApprovalStatus"] for p in packages} == {"PendingManualApproval"}
    assert packages[0]["InferenceSpecification"]["Containers"][0]["Image"] == IMAGE_URI

    described = runner.invoke(app, ["models", "describe", f"{group}/2", "--cloud"])
    assert described.exit_code == 0, described.output
    assert json.loads(described.stdout)["ModelPackageArn"] == packages[1]["ModelPackageArn"]
    assert network_log.off_emulator() == [] and network_log.refused == []


def test_preflight_names_the_missing_role(
    aws: boto3.Session, engine: FakeEngine, network_log: NetworkLog
) -> None:
    aws.client("s3").create_bucket(Bucket="local-mlops-cloud-test")  # but no role

    result = runner.invoke(app, ["run", "--cloud", "--yes"])

    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "cloud preflight: Execution role" in errors[0]
    assert "LocalMlopsExecutionRole" in errors[0]
    assert any(line.startswith("fix:") and "role_arn" in line for line in lines)
    assert "Traceback" not in result.output
    assert aws.client("sagemaker").list_pipelines()["PipelineSummaries"] == []
    assert engine.pushes == []
    assert network_log.refused == []


def test_preflight_wants_the_local_image(cloud_env: boto3.Session, engine: FakeEngine) -> None:
    engine.local_images.clear()

    result = runner.invoke(app, ["run", "--cloud", "--yes"])

    assert result.exit_code == 1
    assert "runtime image local-mlops-runtime:0.1.0 is not built" in _flat(result.stderr)
    assert "fix: local-mlops build" in _flat(result.stderr)
    assert cloud_env.client("sagemaker").list_pipelines()["PipelineSummaries"] == []
