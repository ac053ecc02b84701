"""SageMaker's own run history and model registry, behind the local stores' interface."""

from __future__ import annotations

from typing import Any


class CloudRunStore:
    """Pipeline executions through the SageMaker API, shaped like ``RunStore`` records."""

    def __init__(self, sagemaker_client: Any, pipeline_name: str) -> None:
        self.client = sagemaker_client
        self.pipeline_name = pipeline_name

    def list(self) -> list[dict[str, Any]]:
        response = self.client.list_pipeline_executions(PipelineName=self.pipeline_name)
        return [
            {
                "ExecutionId": s["PipelineExecutionArn"].rsplit("/", 1)[-1],
                "PipelineExecutionArn": s["PipelineExecutionArn"],
                "PipelineName": self.pipeline_name,
                "Status": s.get("PipelineExecutionStatus"),
                "StartTime": s.get("StartTime"),
                "EndTime": None,
                "Steps": [],
            }
            for s in response.get("PipelineExecutionSummaries", [])
        ]

    def get(self, execution_id: str) -> dict[str, Any]:
        arn = (
            execution_id
            if execution_id.startswith("arn:")
            else next(
                (
                    r["PipelineExecutionArn"]
                    for r in self.list()
                    if r["ExecutionId"] == execution_id
                ),
                execution_id,
            )
        )
        described = self.client.describe_pipeline_execution(PipelineExecutionArn=arn)
        steps = self.client.list_pipeline_execution_steps(PipelineExecutionArn=arn)
        return {
            "ExecutionId": arn.rsplit("/", 1)[-1],
            "PipelineExecutionArn": arn,
            "PipelineName": self.pipeline_name,
            "Status": described.get("PipelineExecutionStatus"),
            "FailureReason": described.get("FailureReason", ""),
            "StartTime": described.get("CreationTime"),
            "EndTime": described.get("LastModifiedTime"),
            "Steps": steps.get("PipelineExecutionSteps", []),
        }


class CloudModelRegistry:
    """SageMaker Model Registry, shaped like ``LocalModelRegistry``."""

    def __init__(self, sagemaker_client: Any) -> None:
        self.client = sagemaker_client

    def list_groups(self) -> list[dict[str, Any]]:
        return list(self.client.list_model_package_groups().get("ModelPackageGroupSummaryList", []))

    def list_packages(self, group: str) -> list[dict[str, Any]]:
        summaries = self.client.list_model_packages(ModelPackageGroupName=group).get(
            "ModelPackageSummaryList", []
        )
        packages = [self.describe(s["ModelPackageArn"]) for s in summaries]
        return sorted(packages, key=lambda p: p.get("ModelPackageVersion", 0))

    def describe(self, arn: str) -> dict[str, Any]:
        return dict(self.client.describe_model_package(ModelPackageName=arn))
