"""Running the pipeline on a target and reporting what happened.

``run`` resolves the input data, builds the graph, upserts and starts it, and waits: in local
mode ``start()`` returns when the execution is over; on SageMaker it returns at once and we poll.
Either way the result has the same shape (the SageMaker ListPipelineExecutionSteps one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from local_mlops.account.tags import project_tags
from local_mlops.config import Settings
from local_mlops.devenv.emulator import s3_endpoint
from local_mlops.errors import brief_error
from local_mlops.pipeline import datasets, graph, weights
from local_mlops.targets import Target, open_target

StepEvent = Callable[[str, str, str, dict[str, Any]], None]
POLL_SECONDS = 15  # between status polls of a SageMaker execution (its steps take minutes)

for noisy in ("sagemaker", "sagemaker.config", "botocore.credentials"):
    logging.getLogger(noisy).setLevel(logging.ERROR)


@dataclass
class RunOptions:
    tune: bool = False
    cache: bool = True
    data: str | None = None
    max_jobs: int = 4
    max_parallel_jobs: int = 2
    strategy: str = "Bayesian"
    spot: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
    pretrained_uri: str = ""  # filled by run() from settings.weights


@dataclass
class RunResult:
    execution_arn: str
    status: str
    failure_reason: str
    steps: list[dict[str, Any]]
    seconds: float
    target: str
    console_url: str
    metrics: dict[str, Any] = field(default_factory=dict)
    model_package: dict[str, Any] | None = None
    tuning: dict[str, Any] | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {
            "succeeded": self.succeeded
        }


def build_for(settings: Settings, target: Target, options: RunOptions) -> Any:
    return graph.build_pipeline(
        settings,
        target,
        tune=options.tune,
        cache=options.cache,
        max_jobs=options.max_jobs,
        max_parallel_jobs=options.max_parallel_jobs,
        strategy=options.strategy,
        spot=options.spot,
        pretrained_uri=options.pretrained_uri,
    )


def run(
    settings: Settings,
    options: RunOptions,
    say: Callable[[str], None] = print,
    on_step_event: StepEvent | None = None,
) -> RunResult:
    """Run the whole graph on the configured target."""
    started = time.monotonic()
    with s3_endpoint(settings, announce=say) as endpoint:
        # The same on both targets: an S3 URI as given, else the dataset imported into the
        # target's bucket (once; reused when present).
        input_uri = datasets.resolve_input(
            settings, endpoint.url, settings.dataset, options.data or settings.data, say
        )
        pretrained = weights.resolve(
            settings, endpoint.url, settings.weights, settings.backbone, say
        )
        options = replace(options, pretrained_uri=pretrained)
        target = open_target(
            settings, endpoint.url, cache_enabled=options.cache, on_step_event=on_step_event
        )
        if target.prepare_image is not None:
            target.prepare_image(say)
        pipeline = build_for(settings, target, options)
        # On SageMaker the pipeline carries the project's tags: `cloud down` finds it by them.
        pipeline.upsert(
            role_arn=target.role_arn,
            tags=None if target.is_local else project_tags(settings, "local-mlops run"),
        )
        execution = pipeline.start(parameters={"InputData": input_uri, **options.parameters})
        if not target.is_local:
            steps = _follow(target, execution, [s.name for s in pipeline.steps], say, on_step_event)
            return _result(settings, target, execution, started, steps)
        return _result(settings, target, execution, started, _list_steps(execution))


def _list_steps(execution: Any) -> list[dict[str, Any]]:
    steps = execution.list_steps()
    if isinstance(steps, dict):
        steps = steps.get("PipelineExecutionSteps", [])
    return list(steps)


def _follow(
    target: Target,
    execution: Any,
    names: list[str],
    say: Callable[[str], None],
    on_step_event: StepEvent | None,
) -> list[dict[str, Any]]:
    """Poll a SageMaker execution until it ends, reporting step changes; returns its steps.

    When the step list cannot be read (moto answers HTTP 500; a role may lack the permission),
    the steps are reported as Unknown and the run is followed by its overall status alone.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    arn = execution.arn
    execution_id = arn.rsplit("/", 1)[-1]
    say(f"Started {execution_id} on SageMaker; follow it at {target.console_url(arn)}")
    seen: dict[str, str] = {}
    steps: list[dict[str, Any]] = []
    listable = True
    while True:
        status = execution.describe().get("PipelineExecutionStatus", "Unknown")
        if listable:
            try:
                steps = _list_steps(execution)
            except (BotoCoreError, ClientError) as exc:
                listable = False
                say(
                    f"Cannot list the execution's steps ({brief_error(exc)}): showing them as Unknown."
                )
                steps = [{"StepName": name, "StepStatus": "Unknown"} for name in names]
        for step in steps:
            name, step_status = step.get("StepName", ""), step.get("StepStatus", "Unknown")
            if on_step_event and seen.get(name) != step_status:
                on_step_event(execution_id, name, step_status, step)
            seen[name] = step_status
        if status not in ("Executing", "Stopping"):
            return steps
        time.sleep(POLL_SECONDS)


def _result(
    settings: Settings,
    target: Target,
    execution: Any,
    started: float,
    steps: list[dict[str, Any]],
) -> RunResult:
    description = execution.describe()
    status = description.get("PipelineExecutionStatus", "Unknown")
    arn = description.get("PipelineExecutionArn", "")
    result = RunResult(
        execution_arn=arn,
        status=status,
        failure_reason=description.get("FailureReason", ""),
        steps=steps,
        seconds=time.monotonic() - started,
        target=target.name,
        console_url=target.console_url(arn),
    )
    if target.is_local and target.runstore is not None:
        record = target.runs.get(arn)
        result.steps = record.get("Steps", result.steps)
        result.failure_reason = result.failure_reason or record.get("FailureReason", "")
        result.metrics = _evaluation_metrics(target, execution)
        result.tuning = _tuning_summary(execution)
        result.model_package = _registered(target, settings.model_package_group, arn)
    return result


def _evaluation_metrics(target: Target, execution: Any) -> dict[str, Any]:
    """Accuracy, F1 and friends from the Evaluate step's evaluation.json."""
    import json

    step = getattr(execution, "step_execution", {}).get(graph.EVALUATE)
    outputs = (getattr(step, "properties", None) or {}).get("ProcessingOutputConfig") or {}
    uri = _evaluation_uri(outputs.get("Outputs", []))
    if not uri:
        return {}
    bucket, key = uri[5:].split("/", 1)
    body = target.session.s3_client.get_object(
        Bucket=bucket, Key=key.rstrip("/") + "/evaluation.json"
    )
    report = json.loads(body["Body"].read())
    metrics = report.get("multiclass_classification_metrics", {})
    return {
        name: value.get("value") if isinstance(value, dict) else value
        for name, value in metrics.items()
        if name != "confusion_matrix"
    }


def _tuning_summary(execution: Any) -> dict[str, Any] | None:
    """The tuning step's trials (best first) and its best job, as DescribeHyperParameterTuningJob."""
    step = getattr(execution, "step_execution", {}).get(graph.TUNE)
    properties = getattr(step, "properties", None) or {}
    if "BestTrainingJob" not in properties:
        return None

    def trial(summary: dict[str, Any]) -> dict[str, Any]:
        objective = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
        return {
            "TrainingJobName": summary.get("TrainingJobName"),
            "TrainingJobStatus": summary.get("TrainingJobStatus"),
            "Objective": objective.get("Value"),
            "TunedHyperParameters": summary.get("TunedHyperParameters", {}),
        }

    return {
        "BestTrainingJob": trial(properties["BestTrainingJob"]),
        "Trials": [trial(s) for s in properties.get("TrainingJobSummaries", [])],
    }


def _evaluation_uri(outputs: Any) -> str:
    """The ``evaluation`` output's S3 URI: local mode keys Outputs by name, SageMaker lists them."""
    if isinstance(outputs, dict):
        item = outputs.get("evaluation")
        if isinstance(item, str):
            return item
        if isinstance(item, dict):
            return str(item.get("S3Output", {}).get("S3Uri", ""))
    if isinstance(outputs, list):
        for item in outputs:
            if item.get("OutputName") == "evaluation":
                return str(item.get("S3Output", {}).get("S3Uri", ""))
    return ""


def _registered(target: Target, group: str, execution_arn: str) -> dict[str, Any] | None:
    """The model package this execution registered, if any."""
    for package in reversed(target.models.list_packages(group)):
        made_by = str(package.get("PipelineExecutionArn") or "")
        if made_by.rsplit("/", 1)[-1] == execution_arn.rsplit("/", 1)[-1]:
            return dict(package)
    return None
