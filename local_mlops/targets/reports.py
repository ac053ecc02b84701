"""Reading an execution's results back, the same way on both targets.

The Evaluate step's report (``evaluation.json`` in S3, SageMaker's model-quality format) gives the
metrics; the model package whose ``PipelineExecutionArn`` (local registry) or
``MetadataProperties.GeneratedBy`` (SageMaker) names the execution is the registered version.
"""

from __future__ import annotations

import json
from typing import Any

from local_mlops.pipeline import contract


def evaluation_metrics(s3_client: Any, report_uri: str) -> dict[str, Any]:
    """Accuracy, F1 and friends from the evaluation report at ``report_uri`` ({} if absent)."""
    from botocore.exceptions import ClientError

    if not report_uri.startswith("s3://"):
        return {}
    bucket, key = report_uri[5:].split("/", 1)
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)
    except ClientError:
        return {}
    report = json.loads(body["Body"].read())
    metrics = report.get(contract.METRICS_SECTION, {})
    return {
        name: value.get("value") if isinstance(value, dict) else value
        for name, value in metrics.items()
        if name != "confusion_matrix"
    }


def report_uri(output_uri: str) -> str:
    """The report object under the Evaluate step's ``evaluation`` output prefix."""
    return f"{output_uri.rstrip('/')}/{contract.EVALUATION_FILE}" if output_uri else ""


def evaluation_output_uri(outputs: Any) -> str:
    """The ``evaluation`` output's S3 URI: local mode keys Outputs by name, SageMaker lists them."""
    name = contract.EVALUATION_OUTPUT
    if isinstance(outputs, dict):
        item = outputs.get(name)
        if isinstance(item, str):
            return item
        if isinstance(item, dict):
            return str(item.get("S3Output", {}).get("S3Uri", ""))
    if isinstance(outputs, list):
        for item in outputs:
            if item.get("OutputName") == name:
                return str(item.get("S3Output", {}).get("S3Uri", ""))
    return ""


def made_by(package: dict[str, Any], execution_arn: str) -> bool:
    """Whether the model package was registered by the execution."""
    recorded = package.get("PipelineExecutionArn") or (package.get("MetadataProperties") or {}).get(
        "GeneratedBy"
    )
    return str(recorded or "").rsplit("/", 1)[-1] == execution_arn.rsplit("/", 1)[-1]


def registered_by(registry: Any, group: str, execution_arn: str) -> dict[str, Any] | None:
    """The newest model package of the group that the execution registered, if any."""
    for package in reversed(registry.list_packages(group)):
        if made_by(package, execution_arn):
            return dict(package)
    return None


def package_report_uri(package: dict[str, Any] | None) -> str:
    """The evaluation report the package's model metrics point at."""
    metrics = (package or {}).get("ModelMetrics") or {}
    return str((metrics.get("ModelQuality", {}) or {}).get("Statistics", {}).get("S3Uri", ""))


def trial(summary: dict[str, Any]) -> dict[str, Any]:
    """One tuning trial as the run summary shows it."""
    objective = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    return {
        "TrainingJobName": summary.get("TrainingJobName"),
        "TrainingJobStatus": summary.get("TrainingJobStatus"),
        "Objective": objective.get("Value"),
        "TunedHyperParameters": summary.get("TunedHyperParameters", {}),
    }
