"""From zero to zero: ``cloud init`` -> ``run --cloud`` -> endpoints and a schedule -> ``cloud
down``, against moto. Nothing of the project's is left; what the project did not create stays.

The deploy and ``monitor schedule --cloud`` commands belong to other parts of the project: this
test creates what they create (a model, an endpoint config with data capture, an endpoint, an
EventBridge Scheduler schedule starting the monitoring job) directly with boto3, tagged the way
``local_mlops.account.tags`` tags them. moto's CloudFormation skips AWS::Scheduler::ScheduleGroup,
so the test creates the stack's schedule group itself, as CloudFormation does on AWS; it also turns
on the bucket versioning the stack asks for, so that emptying every version is exercised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from accountkit import (
    BUCKET,
    EXECUTION_ROLE,
    RUNTIME_REPOSITORY,
    SCHEDULER_ROLE,
    SERVING_REPOSITORY,
    STACK,
    flat,
    project_folder,
)
from cloudkit import ACCOUNT, REGION, FakeEngine, NetworkLog
from typer.testing import CliRunner

from local_mlops import __version__
from local_mlops.account.tags import project_tags
from local_mlops.cli.app import app
from local_mlops.config import Settings

runner = CliRunner()
TAGS = project_tags(Settings(), "local-mlops deploy")
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/local-mlops-serving:{__version__}"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{EXECUTION_ROLE}"
SCHEDULER_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{SCHEDULER_ROLE}"


@pytest.fixture
def project(aws: boto3.Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return project_folder(tmp_path, monkeypatch)


def _ok(args: list[str], **kwargs: Any) -> Any:
    result = runner.invoke(app, args, **kwargs)
    assert result.exit_code == 0, result.output
    return result


def _endpoint(sm: Any, name: str, tags: list[dict[str, str]]) -> None:
    """A model, an endpoint config capturing traffic into the bucket, an endpoint."""
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/model.tar.gz"},
        ExecutionRoleArn=ROLE_ARN,
        Tags=tags,
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{BUCKET}/datacapture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        },
        Tags=tags,
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=tags)


def _registered_by_the_run(sm: Any) -> None:
    """The version the run's RegisterModel step registers (moto runs no pipeline step)."""
    group = Settings().model_package_group
    sm.create_model_package_group(ModelPackageGroupName=group)
    sm.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/model.tar.gz"}],
            "SupportedContentTypes": ["image/png"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        DriftCheckBaselines={
            "ModelDataQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{BUCKET}/baseline/statistics.json",
                },
                "Constraints": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{BUCKET}/baseline/constraints.json",
                },
            }
        },
    )


def _schedule(scheduler: Any, name: str, group: str, role_arn: str) -> None:
    scheduler.create_schedule(
        Name=name,
        GroupName=group,
        ScheduleExpression="rate(1 hour)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob",
            "RoleArn": role_arn,
            "Input": json.dumps({"ProcessingJobName": "local-mlops-monitor"}),
        },
    )


def _others(aws: boto3.Session) -> dict[str, Any]:
    """Resources in the same account the project did not create (some with its name prefix)."""
    s3, sm, ecr = aws.client("s3"), aws.client("sagemaker"), aws.client("ecr")
    s3.create_bucket(Bucket="someone-elses-bucket")
    s3.put_object(Bucket="someone-elses-bucket", Key="keep.txt", Body=b"theirs")
    ecr.create_repository(repositoryName="someone-elses-repository")
    aws.client("iam").create_role(RoleName="someone-elses-role", AssumeRolePolicyDocument="{}")
    _endpoint(sm, "local-mlops-by-hand", [{"Key": "team", "Value": "vision"}])
    _schedule(
        aws.client("scheduler"), "nightly-report", "default", f"arn:aws:iam::{ACCOUNT}:role/other"
    )
    return _survivors(aws)


def _survivors(aws: boto3.Session) -> dict[str, Any]:
    sm = aws.client("sagemaker")
    return {
        "object": aws.client("s3")
        .get_object(Bucket="someone-elses-bucket", Key="keep.txt")["Body"]
        .read(),
        "repositories": [
            r["repositoryName"] for r in aws.client("ecr").describe_repositories()["repositories"]
        ],
        "roles": sorted(r["RoleName"] for r in aws.client("iam").list_roles()["Roles"]),
        "endpoints": [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]],
        "configs": [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]],
        "models": [m["ModelName"] for m in sm.list_models()["Models"]],
        "pipelines": [p["PipelineName"] for p in sm.list_pipelines()["PipelineSummaries"]],
        "schedules": [s["Name"] for s in aws.client("scheduler").list_schedules()["Schedules"]],
    }


def _image_in_ecr(aws: boto3.Session, engine: FakeEngine) -> None:
    """The runtime and serving images in the stack's repositories, as after an earlier push."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {},
        "layers": [],
    }
    engine.repo_digests = []
    for repository in (RUNTIME_REPOSITORY, SERVING_REPOSITORY):
        pushed = aws.client("ecr").put_image(
            repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=__version__
        )
        uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repository}"
        engine.local_images.add(f"{uri}:{__version__}")
        engine.repo_digests.append(f"{uri}@{pushed['image']['imageId']['imageDigest']}")


def _dataset(aws: boto3.Session) -> None:
    """What `data import digits` leaves in the bucket, and captured traffic in two versions."""
    s3 = aws.client("s3")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for key in ("manifest.jsonl", "classes.json", "shards/images-000.tar"):
        s3.put_object(Bucket=BUCKET, Key=f"datasets/digits/{key}", Body=b"seeded by the test")
    for body in (b"first", b"second"):
        s3.put_object(
            Bucket=BUCKET, Key="datacapture/ep/AllTraffic/2026/12/01/20/x.jsonl", Body=body
        )


def test_init_run_deploy_schedule_down_leaves_nothing_of_the_projects(
    aws: boto3.Session, project: Path, engine: FakeEngine, network_log: NetworkLog
) -> None:
    others = _others(aws)
    _ok(["cloud", "init", "--yes"])
    _dataset(aws)
    _image_in_ecr(aws, engine)
    run = json.loads(_ok(["run", "--cloud", "--yes", "--json"]).stdout)
    assert run["status"] == "Succeeded"
    sm, scheduler = aws.client("sagemaker"), aws.client("scheduler")
    _registered_by_the_run(sm)
    # Approving deploys: model, endpoint config with data capture, endpoint (the CLI's path).
    _ok(["models", "approve", "1", "--cloud", "--reason", "good enough"])
    # The monitoring job on a timer: an EventBridge Scheduler schedule, made by the CLI.
    _ok(["monitor", "schedule", "--every", "1h", "--cloud"])
    made = scheduler.get_schedule(Name="local-mlops-monitor-local-mlops-endpoint")["Target"]
    assert made["Arn"].endswith(":sagemaker:createProcessingJob")
    assert made["RoleArn"] == SCHEDULER_ROLE_ARN  # the stack's role, written by cloud init

    status = json.loads(_ok(["cloud", "status", "--json"]).stdout)
    kinds = {(r["kind"], r["name"]) for r in status["resources"]}
    [model] = [r["name"] for r in status["resources"] if r["kind"] == "model"]
    [config] = [r["name"] for r in status["resources"] if r["kind"] == "endpoint-config"]
    assert {
        ("endpoint", "local-mlops-endpoint"),
        ("endpoint-config", config),
        ("model", model),
        ("pipeline", "local-mlops-pipeline"),
        ("schedule", "local-mlops-monitor-local-mlops-endpoint"),
    } == kinds
    endpoint = next(r for r in status["resources"] if r["kind"] == "endpoint")
    assert (endpoint["instance_type"], endpoint["instance_count"]) == ("ml.m5.large", 1)
    assert endpoint["hourly_usd"] == pytest.approx(0.115)
    assert status["hourly_usd"] == pytest.approx(0.115)
    assert status["monthly_usd"] >= 0.115 * 730
    stored = {s["where"]: s["bytes"] for s in status["storage"]}
    assert stored[f"s3://{BUCKET}"] > 0
    assert status["prices"]["date"] and status["prices"]["sources"]

    down = _ok(["cloud", "down", "--yes"])

    assert "Nothing of the project's is left in the account." in flat(down.stderr)
    after = json.loads(_ok(["cloud", "status", "--json"]).stdout)
    assert after["stack"] is None and after["resources"] == [] and after["storage"] == []
    assert _survivors(aws) == others
    assert (
        aws.client("cloudformation").list_stacks(
            StackStatusFilter=["CREATE_COMPLETE", "UPDATE_COMPLETE"]
        )["StackSummaries"]
        == []
    )
    assert BUCKET not in [b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]]
    # Again: nothing to do, and still a success.
    again = _ok(["cloud", "down", "--yes"])
    assert "nothing to do" in flat(again.stderr)
    assert network_log.off_emulator() == [] and network_log.refused == []


def test_keep_data_stops_the_bill_and_keeps_the_stack(
    aws: boto3.Session, project: Path, network_log: NetworkLog
) -> None:
    _ok(["cloud", "init", "--yes"])
    _dataset(aws)
    _endpoint(aws.client("sagemaker"), "local-mlops-digits", TAGS)

    down = _ok(["cloud", "down", "--keep-data", "--yes", "--json"])

    report = json.loads(down.stdout)
    assert "deleted endpoint local-mlops-digits" in report["done"]
    assert report["kept"] == ["the stack local-mlops and its data (--keep-data)"]
    status = json.loads(_ok(["cloud", "status", "--json"]).stdout)
    assert status["stack"]["name"] == STACK and status["resources"] == []
    assert status["hourly_usd"] == 0
    key = "datasets/digits/manifest.jsonl"
    assert (
        aws.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"seeded by the test"
    )


def test_down_asks_first_and_a_no_changes_nothing(aws: boto3.Session, project: Path) -> None:
    _ok(["cloud", "init", "--yes"])
    _endpoint(aws.client("sagemaker"), "local-mlops-digits", TAGS)

    result = runner.invoke(app, ["cloud", "down"], input="n\n")

    assert result.exit_code == 1
    assert "delete endpoint local-mlops-digits" in flat(result.stderr)
    assert "delete the stack local-mlops" in flat(result.stderr)
    assert [e["EndpointName"] for e in aws.client("sagemaker").list_endpoints()["Endpoints"]] == [
        "local-mlops-digits"
    ]
    assert aws.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]
