"""Cloud endpoints through boto3 against moto (it stores, it does not serve).

moto has no UpdateEndpoint, so the blue/green update's request is checked by botocore's Stubber
against SageMaker's service model (parameter names, types and required fields) instead.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from cloudkit import ACCOUNT, BUCKET, REGION, ROLE_NAME

from local_mlops.errors import LocalMlopsError
from local_mlops.serving.cloud import PROJECT_TAG, VERSION_TAG, CloudEndpoints, alarm_name
from local_mlops.serving.policy import DeploymentPolicy

IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/local-mlops-runtime:0.1.0"


def package(version: int) -> dict[str, Any]:
    return {
        "ModelPackageVersion": version,
        "ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/g/{version}",
        "InferenceSpecification": {
            "Containers": [
                {"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/{version}/model.tar.gz"}
            ]
        },
    }


def endpoints(aws: boto3.Session, sagemaker: Any = None) -> CloudEndpoints:
    return CloudEndpoints(
        sagemaker or aws.client("sagemaker"),
        aws.client("cloudwatch"),
        region=REGION,
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}",
        bucket=BUCKET,
        poll_seconds=0.01,
    )


def deploy(cloud: CloudEndpoints, version: int, policy: DeploymentPolicy | None = None) -> dict:
    return cloud.deploy(
        "digits",
        package(version),
        IMAGE,
        instance_type="ml.m5.large",
        instance_count=2,
        policy=policy or DeploymentPolicy(),
        capture=True,
        sampling_percentage=50,
    )


def test_deploy_creates_a_tagged_model_config_with_data_capture_and_endpoint(
    aws: boto3.Session,
) -> None:
    cloud = endpoints(aws)
    endpoint = deploy(cloud, 3)
    assert endpoint["EndpointStatus"] == "InService"
    sm = aws.client("sagemaker")
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 50
    assert capture["DestinationS3Uri"] == f"s3://{BUCKET}/datacapture"
    variant = config["ProductionVariants"][0]
    assert (variant["VariantName"], variant["InitialInstanceCount"]) == ("AllTraffic", 2)
    model = sm.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"].endswith("/models/3/model.tar.gz")
    for arn in (endpoint["EndpointArn"], config["EndpointConfigArn"], model["ModelArn"]):
        tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
        assert tags[PROJECT_TAG] == "local-mlops" and tags[VERSION_TAG] == "3"


def test_list_shows_the_endpoint_with_its_runtime_urls(aws: boto3.Session) -> None:
    cloud = endpoints(aws)
    deploy(cloud, 1)
    aws.client("sagemaker").create_model(
        ModelName="someone-elses",
        PrimaryContainer={"Image": IMAGE},
        ExecutionRoleArn="arn:aws:iam::1:role/x",
    )
    [view] = cloud.views()
    assert set(view) == {"name", "status", "version", "variants", "url", "runtime_endpoint_url"}
    assert view["version"] == 1
    assert view["runtime_endpoint_url"] == f"https://runtime.sagemaker.{REGION}.amazonaws.com"
    assert view["url"] == f"{view['runtime_endpoint_url']}/endpoints/digits/invocations"
    assert view["variants"][0]["instance_count"] == 2


def test_an_update_is_blue_green_with_auto_rollback_on_an_alarm(aws: boto3.Session) -> None:
    real = aws.client("sagemaker")
    deploy(endpoints(aws), 1)
    stubbed = aws.client("sagemaker")
    stub = Stubber(stubbed)
    policy = DeploymentPolicy("canary", 10, bake_seconds=300, max_error_rate=0.05)
    stub.add_response(
        "update_endpoint",
        {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/digits"},
        {
            "EndpointName": "digits",
            "EndpointConfigName": ANY,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY",
                        "WaitIntervalInSeconds": 300,
                        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                    },
                    "TerminationWaitInSeconds": 300,
                    "MaximumExecutionTimeoutInSeconds": ANY,
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm_name("digits")}]},
            },
        },
    )

    class Split:
        """moto for everything, the stubbed client for UpdateEndpoint (moto has none)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(stubbed if name == "update_endpoint" else real, name)

    with stub:
        cloud = endpoints(aws, Split())
        with pytest.raises(LocalMlopsError, match="rolled back"):
            # moto never applied the update, so the endpoint still has the old config: that is
            # exactly what SageMaker shows after an automatic rollback.
            deploy(cloud, 2, policy)
        stub.assert_no_pending_responses()
    alarm = aws.client("cloudwatch").describe_alarms(AlarmNames=[alarm_name("digits")])[
        "MetricAlarms"
    ][0]
    assert alarm["Threshold"] == 0.05
    assert {m["Id"] for m in alarm["Metrics"]} == {"errors", "invocations", "rate"}


def test_delete_removes_endpoint_configs_models_and_alarm(aws: boto3.Session) -> None:
    cloud = endpoints(aws)
    deploy(cloud, 1)
    sm = aws.client("sagemaker")
    removed = cloud.delete("digits")
    assert [r.split()[0] for r in removed] == ["endpoint", "endpoint", "model"]
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []
    with pytest.raises(LocalMlopsError, match="no SageMaker endpoint named"):
        cloud.delete("digits")


def test_approve_and_reject_on_the_cloud_registry_deploy_and_delete(
    cloud_env: boto3.Session, engine: Any
) -> None:
    import json

    from typer.testing import CliRunner

    from local_mlops.cli.app import app

    runner = CliRunner()
    sagemaker = cloud_env.client("sagemaker")
    group = "local-mlops-image-classifier"
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    for _ in range(2):
        sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/m.tar.gz"}],
                "SupportedContentTypes": ["image/png"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        )
    rejected = runner.invoke(app, ["models", "reject", "1", "--cloud", "--reason", "too slow"])
    assert rejected.exit_code == 0, rejected.output
    approved = runner.invoke(app, ["models", "approve", "2", "--cloud", "--reason", "better"])
    assert approved.exit_code == 0, approved.output
    described = json.loads(
        runner.invoke(app, ["models", "describe", f"{group}/2", "--cloud"]).stdout
    )
    assert described["ModelApprovalStatus"] == "Approved"
    assert [h["ApprovalDescription"] for h in described["ApprovalHistory"]] == ["better"]
    # a bare version is one of the configured group, as `models approve` takes it
    first = json.loads(runner.invoke(app, ["models", "describe", "1", "--cloud"]).stdout)
    assert first["ApprovalHistory"][0]["ModelApprovalStatus"] == "Rejected"
    # approving deployed it, through the same code path as `deploy --cloud`
    listed = runner.invoke(app, ["endpoints", "list", "--cloud", "--json"])
    [view] = json.loads(listed.stdout)
    assert (view["name"], view["version"], view["status"]) == (
        "local-mlops-endpoint",
        2,
        "InService",
    )
    deleted = runner.invoke(app, ["endpoints", "delete", "--cloud"])
    assert deleted.exit_code == 0, deleted.output
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_models()["Models"] == []
    refused = runner.invoke(app, ["deploy", "--cloud", "--version", "1"])
    assert refused.exit_code == 1 and "is Rejected" in refused.stderr
