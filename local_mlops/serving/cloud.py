"""SageMaker endpoints (``--cloud``) through boto3: model, endpoint config, endpoint.

A deploy creates a model and an endpoint config (with ``DataCaptureConfig``) named
``ENDPOINT-vN-TIMESTAMP``, then creates the endpoint, or updates it with a blue/green
``DeploymentConfig`` (the same traffic shifting and bake as locally, ``serving.policy``) whose
``AutoRollbackConfiguration`` watches a CloudWatch alarm on the new fleet's 5xx error rate.
Every resource is tagged with the project, the endpoint and the model version. ``delete``
removes the endpoint, its configs, its models and its alarm.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from local_mlops.account.tags import PROJECT as PROJECT_TAG
from local_mlops.errors import LocalMlopsError
from local_mlops.serving.capture import CAPTURE_PREFIX
from local_mlops.serving.policy import DeploymentPolicy
from local_mlops.serving.state import DEFAULT_VARIANT, JSON_CONTENT_TYPES, check_name

ENDPOINT_TAG, VERSION_TAG = "local-mlops:endpoint", "local-mlops:model-version"
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
NOT_FOUND = ("ValidationException", "ResourceNotFound")


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def runtime_url(region: str) -> str:
    return f"https://runtime.sagemaker.{region}.amazonaws.com"


def alarm_name(endpoint: str) -> str:
    return f"{endpoint}-invocation-5xx-rate"


class CloudEndpoints:
    """Endpoints on SageMaker, shaped like the local ones for the commands."""

    def __init__(
        self,
        sagemaker: Any,
        cloudwatch: Any,
        *,
        region: str,
        role_arn: str,
        bucket: str,
        say: Callable[[str], None] = lambda _: None,
        poll_seconds: float = 15.0,
        base_tags: list[dict[str, str]] | None = None,
    ) -> None:
        self.sm = sagemaker
        self.cw = cloudwatch
        self.region = region
        self.role_arn = role_arn
        self.bucket = bucket
        self.say = say
        self.poll_seconds = poll_seconds
        # The project's tags (account.tags.project_tags): `cloud down` removes what carries them.
        self.base_tags = base_tags or [{"Key": PROJECT_TAG, "Value": "local-mlops"}]
        self.project = next(t["Value"] for t in self.base_tags if t["Key"] == PROJECT_TAG)

    def _tags(self, endpoint: str, version: int) -> list[dict[str, str]]:
        return [
            *self.base_tags,
            {"Key": ENDPOINT_TAG, "Value": endpoint},
            {"Key": VERSION_TAG, "Value": str(version)},
        ]

    def find(self, name: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            found = self.sm.describe_endpoint(EndpointName=name)
        except ClientError as exc:
            if _code(exc) in NOT_FOUND:
                return None
            raise
        return {k: v for k, v in found.items() if k != "ResponseMetadata"}

    def deploy(
        self,
        name: str,
        package: dict[str, Any],
        image: str,
        *,
        instance_type: str,
        instance_count: int,
        policy: DeploymentPolicy,
        capture: bool,
        sampling_percentage: int,
        wait: bool = True,
    ) -> dict[str, Any]:
        """Create the endpoint, or update it blue/green with auto-rollback."""
        check_name(name)
        version = int(package["ModelPackageVersion"])
        containers = package.get("InferenceSpecification", {}).get("Containers") or [{}]
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
        resource = f"{name}-v{version}-{stamp}"[-63:].lstrip("-")
        tags = self._tags(name, version)
        self.sm.create_model(
            ModelName=resource,
            PrimaryContainer={"Image": image, "ModelDataUrl": containers[0]["ModelDataUrl"]},
            ExecutionRoleArn=self.role_arn,
            Tags=tags,
        )
        self.sm.create_endpoint_config(
            EndpointConfigName=resource,
            ProductionVariants=[
                {
                    "VariantName": DEFAULT_VARIANT,
                    "ModelName": resource,
                    "InitialInstanceCount": instance_count,
                    "InstanceType": instance_type,
                    "InitialVariantWeight": 1.0,
                }
            ],
            DataCaptureConfig={
                "EnableCapture": capture,
                "InitialSamplingPercentage": sampling_percentage,
                "DestinationS3Uri": f"s3://{self.bucket}/{CAPTURE_PREFIX}",
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {"JsonContentTypes": list(JSON_CONTENT_TYPES)},
            },
            Tags=tags,
        )
        existing = self.find(name)
        if existing is None:
            self.say(f"Creating SageMaker endpoint {name} (version {version}) ...")
            self.sm.create_endpoint(EndpointName=name, EndpointConfigName=resource, Tags=tags)
        else:
            self._put_alarm(name, policy, tags)
            self.say(
                f"Updating SageMaker endpoint {name} to version {version} ({policy.describe()}) ..."
            )
            self.sm.update_endpoint(
                EndpointName=name,
                EndpointConfigName=resource,
                DeploymentConfig={
                    "BlueGreenUpdatePolicy": policy.blue_green_update_policy(),
                    "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm_name(name)}]},
                },
            )
            self.sm.add_tags(ResourceArn=existing["EndpointArn"], Tags=tags)
        if not wait:
            return self.find(name) or {}
        return self._settle(name, resource, version)

    def _put_alarm(self, name: str, policy: DeploymentPolicy, tags: list[dict[str, str]]) -> None:
        """The rollback alarm: 5xx errors / invocations above the error-rate limit."""

        def metric(metric_id: str, metric_name: str) -> dict[str, Any]:
            return {
                "Id": metric_id,
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SageMaker",
                        "MetricName": metric_name,
                        "Dimensions": [
                            {"Name": "EndpointName", "Value": name},
                            {"Name": "VariantName", "Value": DEFAULT_VARIANT},
                        ],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
                "ReturnData": False,
            }

        self.cw.put_metric_alarm(
            AlarmName=alarm_name(name),
            AlarmDescription=f"local-mlops: roll back {name} when its 5xx rate passes the limit",
            Metrics=[
                metric("errors", "Invocation5XXErrors"),
                metric("invocations", "Invocations"),
                {"Id": "rate", "Expression": "errors / invocations", "ReturnData": True},
            ],
            EvaluationPeriods=1,
            Threshold=policy.max_error_rate,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
            Tags=tags,
        )

    def _settle(self, name: str, config: str, version: int) -> dict[str, Any]:
        """Wait while SageMaker works; a finished update on another config rolled back."""
        while True:
            endpoint = self.find(name) or {}
            if endpoint.get("EndpointStatus") not in BUSY:
                break
            time.sleep(self.poll_seconds)
        if endpoint.get("EndpointStatus") == "Failed":
            raise LocalMlopsError(
                f"SageMaker endpoint {name} failed: {endpoint.get('FailureReason')}",
                "see the endpoint's CloudWatch logs; fix the model, then deploy again",
            )
        if endpoint.get("EndpointConfigName") != config:
            raise LocalMlopsError(
                f"the update of {name} to version {version} rolled back: "
                f"{endpoint.get('FailureReason') or 'the rollback alarm fired'}",
                f"{name} still serves {endpoint.get('EndpointConfigName')}",
            )
        return endpoint

    def views(self) -> list[dict[str, Any]]:
        """Endpoints this project made (by tag), as the commands show them."""
        views = []
        token = None
        while True:
            page = self.sm.list_endpoints(**({"NextToken": token} if token else {}))
            for summary in page.get("Endpoints", []):
                tags = self._tag_map(summary["EndpointArn"])
                if tags.get(PROJECT_TAG) == self.project:
                    views.append(self.view(summary["EndpointName"], tags))
            token = page.get("NextToken")
            if not token:
                return views

    def _tag_map(self, arn: str) -> dict[str, str]:
        tags = self.sm.list_tags(ResourceArn=arn).get("Tags", [])
        return {t["Key"]: t["Value"] for t in tags}

    def view(self, name: str, tags: dict[str, str] | None = None) -> dict[str, Any]:
        endpoint = self.find(name)
        if endpoint is None:
            raise LocalMlopsError(
                f"no SageMaker endpoint named {name!r}",
                "list them with `local-mlops endpoints list --cloud`",
            )
        tags = tags if tags is not None else self._tag_map(endpoint["EndpointArn"])
        base = runtime_url(self.region)
        version = tags.get(VERSION_TAG)
        return {
            "name": name,
            "status": endpoint.get("EndpointStatus"),
            "version": int(version) if version and version.isdigit() else None,
            "variants": [
                {
                    "name": v.get("VariantName"),
                    "instance_count": v.get("CurrentInstanceCount"),
                    "weight": v.get("CurrentWeight"),
                }
                for v in endpoint.get("ProductionVariants", [])
            ],
            "url": f"{base}/endpoints/{name}/invocations",
            "runtime_endpoint_url": base,
        }

    def delete(self, name: str) -> list[str]:
        """Remove the endpoint, every config and model made for it, and its alarm."""
        from botocore.exceptions import ClientError

        if self.find(name) is None:
            raise LocalMlopsError(
                f"no SageMaker endpoint named {name!r}",
                "list them with `local-mlops endpoints list --cloud`",
            )
        removed = [f"endpoint {name}"]
        self.sm.delete_endpoint(EndpointName=name)
        prefix = f"{name}-v"
        for config in self._names(
            self.sm.list_endpoint_configs, "EndpointConfigs", "EndpointConfigName", prefix
        ):
            self.sm.delete_endpoint_config(EndpointConfigName=config)
            removed.append(f"endpoint config {config}")
        for model in self._names(self.sm.list_models, "Models", "ModelName", prefix):
            self.sm.delete_model(ModelName=model)
            removed.append(f"model {model}")
        # The alarm exists only once the endpoint was updated.
        with contextlib.suppress(ClientError):
            self.cw.delete_alarms(AlarmNames=[alarm_name(name)])
        return removed

    def _names(self, call: Any, key: str, field: str, prefix: str) -> list[str]:
        names, token = [], None
        while True:
            page = call(NameContains=prefix, **({"NextToken": token} if token else {}))
            names += [item[field] for item in page.get(key, []) if item[field].startswith(prefix)]
            token = page.get("NextToken")
            if not token:
                return names
