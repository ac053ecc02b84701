"""``monitor schedule --cloud``: EventBridge Scheduler starts the monitoring processing job.

Model Monitor's schedules are closed to new customers, so the schedule is EventBridge
Scheduler's, with the universal target ``sagemaker:createProcessingJob``: the request is the job
``monitor run`` starts, fixed at schedule time (the model version, its baseline, the image),
except what the scheduler fills in for each run through its context attributes: the job name
(``<aws.scheduler.execution-id>``), the window's end (``<aws.scheduler.scheduled-time>``) and
the report folder, ``s3://BUCKET/monitoring/ENDPOINT/<scheduled-time>/``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError
from local_mlops.monitoring import run
from local_mlops.pipeline import contract
from local_mlops.serving.captured import parse_window
from local_mlops.targets import Target

TARGET_ARN = "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob"
EXECUTION_ID = "<aws.scheduler.execution-id>"
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
RATE_UNITS = {"m": "minute", "h": "hour", "d": "day"}


def schedule_name(settings: Settings, endpoint: str) -> str:
    return f"{settings.project}-monitor-{endpoint}"[:64]


def rate_expression(every: str) -> str:
    """``1h`` -> ``rate(1 hour)``, ``30m`` -> ``rate(30 minutes)``."""
    parse_window(every, "--every")
    match = re.match(r"^(\d+)([mhd])$", every.strip())
    assert match is not None  # parse_window accepted it
    count, unit = int(match[1]), RATE_UNITS[match[2]]
    return f"rate({count} {unit}{'' if count == 1 else 's'})"


def _input(source: str, destination: str, name: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": source,
            "LocalPath": destination,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
        },
    }


def job_request(
    settings: Settings, target: Target, package: dict[str, Any], endpoint: str, window: str
) -> dict[str, Any]:
    """The CreateProcessingJob request of each scheduled run."""
    s3 = target.session.boto_session.client("s3")
    bucket = target.bucket
    inputs = [
        _input(run.baseline_folder(package), contract.PROCESSING_BASELINE, "baseline"),
        _input(run.model_data(package), contract.PROCESSING_MODEL, "model"),
        _input(f"s3://{bucket}/{run.CAPTURE_PREFIX}/{endpoint}/", contract.PROCESSING_CAPTURE,
               "capture"),
    ]  # fmt: skip
    if run.has_objects(s3, bucket, f"{run.GROUND_TRUTH_PREFIX}/{endpoint}/"):
        inputs.append(
            _input(f"s3://{bucket}/{run.GROUND_TRUTH_PREFIX}/{endpoint}/",
                   contract.PROCESSING_GROUND_TRUTH, "groundtruth")
        )  # fmt: skip
    seconds = int(parse_window(window).total_seconds())
    return {
        "ProcessingJobName": f"lmo-monitor-{EXECUTION_ID}",
        "RoleArn": target.role_arn,
        "AppSpecification": {
            "ImageUri": target.image_uri,
            "ContainerEntrypoint": ["python3", "-m", "mlops_container.monitor"],
            "ContainerArguments": [
                "--end",
                SCHEDULED_TIME,
                "--window-seconds",
                str(seconds),
                "--endpoint",
                endpoint,
            ],  # fmt: skip
        },
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "report",
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/{run.MONITORING_PREFIX}/{endpoint}/"
                        f"{SCHEDULED_TIME}",
                        "LocalPath": contract.PROCESSING_MONITOR_OUTPUT,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": target.processing_instance_type,
                "VolumeSizeInGB": 30,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Tags": [{"Key": "local-mlops:project", "Value": settings.project}],
    }


def _client(settings: Settings) -> Any:
    import boto3

    session = boto3.Session(region_name=settings.region, profile_name=settings.profile or None)
    return session.client("scheduler")


def create(
    settings: Settings,
    target: Target,
    endpoint: str,
    every: str,
    window: str | None,
    version: int | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Create (or replace) the endpoint's schedule; what it is."""
    from botocore.exceptions import ClientError

    package = run.pick_package(target.models.list_packages(settings.model_package_group), version)
    request = job_request(settings, target, package, endpoint, window or every)
    scheduler = client or _client(settings)
    name = schedule_name(settings, endpoint)
    arguments = {
        "Name": name,
        "ScheduleExpression": rate_expression(every),
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": TARGET_ARN,
            "RoleArn": settings.scheduler_role_arn or settings.role_arn,
            "Input": json.dumps(request),
        },
        "Description": f"local-mlops monitoring of {endpoint} every {every}",
    }
    try:
        try:
            scheduler.create_schedule(**arguments)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConflictException":
                raise
            scheduler.update_schedule(**arguments)
    except ClientError as error:
        raise LocalMlopsError(
            f"EventBridge Scheduler refused the schedule: {error}",
            "check scheduler_role_arn (it must trust scheduler.amazonaws.com)",
        ) from error
    return {
        "endpoint": endpoint,
        "every": every,
        "window": window or every,
        "schedule": name,
        "model_version": package.get("ModelPackageVersion"),
    }


def delete(settings: Settings, endpoint: str | None, client: Any = None) -> list[str]:
    """Delete the endpoint's schedule (None: every monitoring schedule of the project)."""
    from botocore.exceptions import ClientError

    scheduler = client or _client(settings)
    rows = list_schedules(settings, scheduler)
    names = [r["schedule"] for r in rows if endpoint is None or r["endpoint"] == endpoint]
    if endpoint is not None and not names:
        raise LocalMlopsError(
            f"endpoint {endpoint!r} has no monitoring schedule in the account",
            "list them with `local-mlops monitor schedules --cloud`",
        )
    for name in names:
        try:
            scheduler.delete_schedule(Name=name)
        except ClientError as error:
            raise LocalMlopsError(f"could not delete schedule {name}: {error}") from error
    return [r["endpoint"] for r in rows if r["schedule"] in names]


def list_schedules(settings: Settings, client: Any = None) -> list[dict[str, Any]]:
    """The project's monitoring schedules."""
    scheduler = client or _client(settings)
    prefix = f"{settings.project}-monitor-"
    rows = []
    for page in scheduler.get_paginator("list_schedules").paginate(NamePrefix=prefix):
        for item in page.get("Schedules", []):
            detail = scheduler.get_schedule(Name=item["Name"])
            expression = detail.get("ScheduleExpression", "")
            request = json.loads(detail.get("Target", {}).get("Input") or "{}")
            arguments = request.get("AppSpecification", {}).get("ContainerArguments", [])
            rows.append(
                {
                    "endpoint": item["Name"].removeprefix(prefix),
                    "schedule": item["Name"],
                    "every": expression,
                    "window": f"{arguments[arguments.index('--window-seconds') + 1]}s"
                    if "--window-seconds" in arguments
                    else "",
                    "state": detail.get("State", ""),
                }
            )
    return rows
