"""``cloud down``: delete what the project has in the account, found by its tags, in an order
that leaves nothing running:

    1. stop running pipeline executions and jobs      (they bill per second)
    2. delete schedules                               (they would start new jobs)
    3. delete endpoints, then their configs and models (endpoints bill per hour)
    4. delete pipelines
    5. unless keep_data: the model package groups, every object version in the bucket, every
       image in the repositories, then the stack (roles, bucket, repositories, schedule group)

Idempotent: what is already gone is skipped. Only resources tagged ``local-mlops:project`` with
the project's name are touched (schedules, which cannot carry tags, by their group or role).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local_mlops.account import aws, inventory, stack
from local_mlops.account.inventory import Inventory, Item
from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError, brief_error

Say = Callable[[str], None]
ENDPOINT_WAIT_SECONDS = 15 * 60
STOP_CALLS = {
    "execution": ("stop_pipeline_execution", "PipelineExecutionArn", "arn"),
    "training-job": ("stop_training_job", "TrainingJobName", "name"),
    "processing-job": ("stop_processing_job", "ProcessingJobName", "name"),
    "transform-job": ("stop_transform_job", "TransformJobName", "name"),
}
DELETE_CALLS = {
    "endpoint": ("delete_endpoint", "EndpointName"),
    "endpoint-config": ("delete_endpoint_config", "EndpointConfigName"),
    "model": ("delete_model", "ModelName"),
    "pipeline": ("delete_pipeline", "PipelineName"),
}
GONE = ("Could not find", "does not exist", "not found", "ResourceNotFound")


@dataclass
class Plan:
    """What ``down`` will do, shown before asking."""

    inventory: Inventory
    stack: stack.Stack | None
    keep_data: bool

    @property
    def data_items(self) -> list[Item]:
        return [] if self.keep_data else self.inventory.of("model-package-group")

    def lines(self) -> list[str]:
        found = []
        for item in self.inventory.items:
            if item.kind == "model-package-group" and self.keep_data:
                continue
            verb = "stop" if item.kind in STOP_CALLS else "delete"
            found.append(f"{verb} {item.kind} {item.name}")
        if self.stack and not self.keep_data:
            for where in self.inventory.storage:
                found.append(f"delete {where.where} ({where.bytes / 1e9:.2f} GB)")
            found.append(f"delete the stack {self.stack.name} (roles, bucket, repositories)")
        return found


@dataclass
class Report:
    done: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def plan(session: Any, settings: Settings, keep_data: bool) -> Plan:
    found = stack.describe(session, settings)
    if found is not None:
        stack.owned(settings, found)
    bucket = (found.outputs.get("BucketName", "") if found else "") if not keep_data else ""
    return Plan(inventory.collect(session, settings, bucket), found, keep_data)


def _gone(exc: Exception) -> bool:
    return any(marker in brief_error(exc) for marker in GONE)


def _call(client: Any, operation: str, doing: str, **kwargs: Any) -> bool:
    """Run a stop/delete call; False when the resource was already gone."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        getattr(client, operation)(**kwargs)
        return True
    except ClientError as exc:
        if _gone(exc):
            return False
        action = f"{client.meta.service_model.signing_name}:{inventory.action_name(operation)}"
        raise aws.translate(exc, doing, action) from exc
    except BotoCoreError as exc:
        raise aws.translate(exc, doing, operation) from exc


def _wait_endpoints_gone(sm: Any, names: list[str], say: Say) -> None:
    """Endpoint deletion takes minutes; their configs can be deleted meanwhile, the bill stops
    when they are gone."""
    from botocore.exceptions import ClientError

    deadline = time.monotonic() + ENDPOINT_WAIT_SECONDS
    pending = list(names)
    while pending:
        still = []
        for name in pending:
            try:
                sm.describe_endpoint(EndpointName=name)
                still.append(name)
            except ClientError as exc:
                if not _gone(exc):
                    raise aws.translate(
                        exc, "waiting for the endpoint's deletion", "sagemaker:DescribeEndpoint"
                    ) from exc
        pending = still
        if pending and time.monotonic() > deadline:
            raise LocalMlopsError(
                f"endpoints still deleting after {ENDPOINT_WAIT_SECONDS // 60} min: {', '.join(pending)}",
                "run local-mlops cloud down again later",
            )
        if pending:
            say(f"Waiting for {len(pending)} endpoint(s) to be deleted ...")
            time.sleep(stack.POLL_SECONDS)


def _sagemaker(session: Any, found: Inventory, say: Say, report: Report) -> None:
    sm = session.client("sagemaker")
    for item in found.items:
        if item.kind in STOP_CALLS:
            operation, key, attribute = STOP_CALLS[item.kind]
            if _call(
                sm,
                operation,
                f"stopping {item.kind} {item.name}",
                **{key: getattr(item, attribute)},
            ):
                report.done.append(f"stopped {item.kind} {item.name}")
    scheduler = session.client("scheduler")
    for item in found.of("schedule"):
        if _call(
            scheduler,
            "delete_schedule",
            f"deleting schedule {item.name}",
            Name=item.name,
            GroupName=item.group,
        ):
            report.done.append(f"deleted schedule {item.name}")
    for kind in ("endpoint", "endpoint-config", "model", "pipeline"):
        operation, key = DELETE_CALLS[kind]
        for item in found.of(kind):
            if _call(sm, operation, f"deleting {kind} {item.name}", **{key: item.name}):
                report.done.append(f"deleted {kind} {item.name}")
        if kind == "endpoint":
            _wait_endpoints_gone(sm, [i.name for i in found.of("endpoint")], say)


def _registry(session: Any, found: Inventory, report: Report) -> None:
    sm = session.client("sagemaker")
    for group in found.of("model-package-group"):
        packages = inventory.list_all(
            sm, "list_model_packages", "ModelPackageSummaryList", ModelPackageGroupName=group.name
        )
        for package in packages:
            _call(
                sm,
                "delete_model_package",
                f"deleting model package {package['ModelPackageArn']}",
                ModelPackageName=package["ModelPackageArn"],
            )
        if _call(
            sm,
            "delete_model_package_group",
            f"deleting model package group {group.name}",
            ModelPackageGroupName=group.name,
        ):
            report.done.append(
                f"deleted model-package-group {group.name} ({len(packages)} versions)"
            )


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker; returns how many were deleted."""
    from botocore.exceptions import ClientError

    deleted = 0
    try:
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            keys = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            for start in range(0, len(keys), 1000):
                s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True}
                )
                deleted += len(keys[start : start + 1000])
    except ClientError as exc:
        if aws.error_code(exc) == "NoSuchBucket":
            return deleted
        raise aws.translate(exc, f"emptying s3://{bucket}", "s3:DeleteObjectVersion") from exc
    return deleted


def empty_repository(ecr: Any, name: str) -> int:
    images = inventory.list_all(ecr, "describe_images", "imageDetails", repositoryName=name)
    ids = [{"imageDigest": i["imageDigest"]} for i in images]
    for start in range(0, len(ids), 100):
        aws.call(
            f"deleting the images in {name}",
            "ecr:BatchDeleteImage",
            ecr.batch_delete_image,
            repositoryName=name,
            imageIds=ids[start : start + 100],
        )
    return len(ids)


def _data(session: Any, settings: Settings, found: Plan, say: Say, report: Report) -> None:
    _registry(session, found.inventory, report)
    if found.stack is None:
        return
    bucket = found.stack.outputs.get("BucketName", "")
    if bucket:
        say(f"Emptying s3://{bucket} (every version) ...")
        report.done.append(
            f"deleted {empty_bucket(session.client('s3'), bucket)} object versions in s3://{bucket}"
        )
    ecr = session.client("ecr")
    for repo in inventory.project_repositories(settings, ecr):
        report.done.append(
            f"deleted {empty_repository(ecr, repo['repositoryName'])} images in {repo['repositoryName']}"
        )
    stack.delete(session, settings, found.stack, say)
    report.done.append(f"deleted the stack {found.stack.name}")


def tear_down(session: Any, settings: Settings, found: Plan, say: Say) -> Report:
    """Carry out the plan (the caller has asked for confirmation)."""
    report = Report()
    _sagemaker(session, found.inventory, say, report)
    if found.keep_data:
        if found.stack:
            report.kept.append(f"the stack {found.stack.name} and its data (--keep-data)")
        report.kept += [
            f"model-package-group {i.name}" for i in found.inventory.of("model-package-group")
        ]
    else:
        _data(session, settings, found, say, report)
    return report
