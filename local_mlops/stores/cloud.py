"""SageMaker's own run history and model registry, behind the local stores' interface.

Records have the local stores' shapes (``RunStore`` records, DescribeModelPackage dicts), so the
``runs`` and ``models`` commands render both the same way. Where SageMaker (or an emulator of it:
moto answers ``ListPipelineExecutionSteps`` with HTTP 500) cannot list an execution's steps, the
record says so in ``StepsUnavailable`` instead of failing the whole command.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from local_mlops.errors import LocalMlopsError, brief_error

APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")
NOT_FOUND = ("ResourceNotFound", "ValidationException")


def _pages(call: Any, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of a paginated SageMaker list call."""
    token = None
    while True:
        response = call(**kwargs, **({"NextToken": token} if token else {}))
        yield from response.get(key, [])
        token = response.get("NextToken")
        if not token:
            return


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _clean(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


class CloudRunStore:
    """Pipeline executions through the SageMaker API, shaped like ``RunStore`` records."""

    def __init__(self, sagemaker_client: Any, pipeline_name: str) -> None:
        self.client = sagemaker_client
        self.pipeline_name = pipeline_name

    def list(self) -> list[dict[str, Any]]:
        """The pipeline's executions, newest first; none when the pipeline does not exist yet."""
        from botocore.exceptions import ClientError

        try:
            summaries = list(
                _pages(
                    self.client.list_pipeline_executions,
                    "PipelineExecutionSummaries",
                    PipelineName=self.pipeline_name,
                    SortBy="CreationTime",
                    SortOrder="Descending",
                )
            )
        except ClientError as exc:
            if _code(exc) in NOT_FOUND:
                return []
            raise
        return [
            {
                "ExecutionId": s["PipelineExecutionArn"].rsplit("/", 1)[-1],
                "PipelineExecutionArn": s["PipelineExecutionArn"],
                "PipelineName": self.pipeline_name,
                "DisplayName": s.get("PipelineExecutionDisplayName", ""),
                "Status": s.get("PipelineExecutionStatus"),
                "FailureReason": _reason(s.get("PipelineExecutionFailureReason")),
                "StartTime": s.get("StartTime"),
                "EndTime": None,
                "Steps": [],
            }
            for s in summaries
        ]

    def _arn(self, execution_id: str) -> str:
        if execution_id.startswith("arn:"):
            return execution_id
        for record in self.list():
            if record["ExecutionId"] == execution_id:
                return str(record["PipelineExecutionArn"])
        raise LocalMlopsError(
            f"no execution {execution_id!r} of pipeline {self.pipeline_name} on SageMaker",
            "list executions with `local-mlops runs list --cloud`",
        )

    def get(self, execution_id: str) -> dict[str, Any]:
        """One execution with its steps (by id or ARN)."""
        from botocore.exceptions import BotoCoreError, ClientError

        arn = self._arn(execution_id)
        try:
            described = self.client.describe_pipeline_execution(PipelineExecutionArn=arn)
        except ClientError as exc:
            if _code(exc) in NOT_FOUND:
                raise LocalMlopsError(
                    f"no execution {arn} on SageMaker",
                    "list executions with `local-mlops runs list --cloud`",
                ) from exc
            raise
        record: dict[str, Any] = {
            "ExecutionId": arn.rsplit("/", 1)[-1],
            "PipelineExecutionArn": arn,
            "PipelineName": self.pipeline_name,
            "DisplayName": described.get("PipelineExecutionDisplayName", ""),
            "Status": described.get("PipelineExecutionStatus"),
            "FailureReason": _reason(described.get("FailureReason")),
            "StartTime": described.get("CreationTime"),
            "EndTime": described.get("LastModifiedTime"),
            "Steps": [],
        }
        try:
            record["Steps"] = list(
                _pages(
                    self.client.list_pipeline_execution_steps,
                    "PipelineExecutionSteps",
                    PipelineExecutionArn=arn,
                    SortOrder="Ascending",
                )
            )
        except (BotoCoreError, ClientError) as exc:
            record["StepsUnavailable"] = brief_error(exc)
        try:
            record["Parameters"] = {
                p["Name"]: p["Value"]
                for p in _pages(
                    self.client.list_pipeline_parameters_for_execution,
                    "PipelineParameters",
                    PipelineExecutionArn=arn,
                )
            }
        except (BotoCoreError, ClientError):
            record["Parameters"] = {}
        return record


HISTORY_KEY = "local-mlops:approval-"


def _history(metadata: dict[str, str]) -> list[dict[str, str]]:
    """The approval history kept in customer metadata, oldest first."""
    import json

    events = []
    for key in sorted(k for k in metadata if k.startswith(HISTORY_KEY)):
        try:
            raw = json.loads(metadata[key])
        except ValueError:
            continue
        events.append(
            {
                "ModelApprovalStatus": raw.get("s", ""),
                "ApprovalDescription": raw.get("d", ""),
                "Time": raw.get("t", ""),
                "By": raw.get("b", ""),
            }
        )
    return events


def _reason(value: Any) -> str:
    """SageMaker's failure reason; moto reports a missing one as the string 'None'."""
    return "" if value in (None, "None") else str(value)


class CloudModelRegistry:
    """SageMaker Model Registry, shaped like ``LocalModelRegistry``."""

    def __init__(self, sagemaker_client: Any) -> None:
        self.client = sagemaker_client

    def list_groups(self) -> list[dict[str, Any]]:
        return list(_pages(self.client.list_model_package_groups, "ModelPackageGroupSummaryList"))

    def list_packages(self, group: str) -> list[dict[str, Any]]:
        """The group's packages, version 1 first; none when the group does not exist."""
        from botocore.exceptions import ClientError

        try:
            summaries = list(
                _pages(
                    self.client.list_model_packages,
                    "ModelPackageSummaryList",
                    ModelPackageGroupName=group,
                )
            )
        except ClientError as exc:
            if _code(exc) in NOT_FOUND:
                return []
            raise
        packages = [self.describe(s["ModelPackageArn"]) for s in summaries]
        return sorted(packages, key=lambda p: p.get("ModelPackageVersion", 0))

    def _arn(self, arn_or_group_version: str) -> str:
        if arn_or_group_version.startswith("arn:"):
            return arn_or_group_version
        group, sep, version = arn_or_group_version.rpartition("/")
        if not sep or not version.isdigit():
            raise LocalMlopsError(
                f"not a model package reference: {arn_or_group_version!r}",
                "pass a model package ARN or <group>/<version>",
            )
        for summary in _pages(
            self.client.list_model_packages,
            "ModelPackageSummaryList",
            ModelPackageGroupName=group,
        ):
            if int(summary.get("ModelPackageVersion", 0)) == int(version):
                return str(summary["ModelPackageArn"])
        raise LocalMlopsError(
            f"model package {group}/{version} does not exist on SageMaker",
            "list packages with `local-mlops models list --cloud`",
        )

    def describe(self, arn_or_group_version: str) -> dict[str, Any]:
        """One package by ARN or ``<group>/<version>``, as DescribeModelPackage returns it."""
        arn = self._arn(arn_or_group_version)
        package = _clean(self.client.describe_model_package(ModelPackageName=arn))
        package["ApprovalHistory"] = _history(package.get("CustomerMetadataProperties") or {})
        return package

    def update_approval(
        self, arn_or_group_version: str, status: str, description: str | None = None
    ) -> dict[str, Any]:
        """Set ``ModelApprovalStatus`` (and ``ApprovalDescription``) on a package."""
        if status not in APPROVAL_STATUSES:
            raise LocalMlopsError(
                f"unknown approval status {status!r}", f"use one of {', '.join(APPROVAL_STATUSES)}"
            )
        import datetime as dt
        import json

        from local_mlops.stores.registry import approval_event

        arn = self._arn(arn_or_group_version)
        extra: dict[str, Any] = {"ApprovalDescription": description} if description else {}
        # SageMaker keeps only the current status: the history rides in the package's customer
        # metadata, one entry per key (values are limited to 256 characters).
        current = self.describe(arn)
        history = current.get("ApprovalHistory", [])
        event = approval_event(status, description, dt.datetime.now(dt.UTC).isoformat())
        entry = json.dumps(
            {"s": status, "d": (description or "")[:120], "t": event["Time"], "b": event["By"]}
        )
        # Sent whole: SageMaker merges the keys, moto replaces them; both end up the same.
        extra["CustomerMetadataProperties"] = {
            **(current.get("CustomerMetadataProperties") or {}),
            f"{HISTORY_KEY}{len(history) + 1:03d}": entry[:256],
        }
        self.client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status, **extra)
        return self.describe(arn)
