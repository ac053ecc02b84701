"""Running the pipeline on a target and reporting what happened.

``run`` resolves the input data, builds the graph, and has the target upsert and start it, wait
for it (local mode's ``start()`` returns when the execution is over; SageMaker's is polled) and
read its results back. Either way the result has the same shape: the steps as
ListPipelineExecutionSteps lists them, the evaluation metrics, the registered model package and,
with a batch input (``run --batch-input``), where BatchScore wrote and how many outputs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from local_mlops.config import Settings
from local_mlops.devenv import processes
from local_mlops.devenv.emulator import s3_endpoint
from local_mlops.pipeline import datasets, hyperparameters, weights
from local_mlops.serving import batch
from local_mlops.targets import Target, open_target

INSTANCE_COUNT = "TrainingInstanceCount"  # the graph's parameter (graph.build_parameters)
StepEvent = Callable[[str, str, str, dict[str, Any]], None]

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
    skip_bad_images: bool = False  # importing --data: leave unreadable images out, listed
    parameters: dict[str, Any] = field(default_factory=dict)
    pretrained_uri: str = ""  # filled by run() from settings.weights
    # Images for the BatchScore step: a local folder (uploaded first) or an s3:// prefix.
    batch_input: str = ""


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
    evaluation_uri: str = ""  # the Evaluate step's report (evaluation.json) in S3
    instance_count: int = 1  # training hosts per training job (TrainingInstanceCount)
    batch_input: str = ""  # the BatchInput prefix BatchScore scored ("" without the step)
    batch_output: str = ""  # where BatchScore writes one NAME.out per image
    batch_outputs: int = 0  # the .out objects there once the run ended

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {
            "succeeded": self.succeeded
        }


def build_for(settings: Settings, target: Target, options: RunOptions) -> Any:
    from local_mlops.pipeline import graph

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
        instance_count=int(options.parameters.get(INSTANCE_COUNT, 1)),
        batch_input=options.batch_input,
    )


def run(
    settings: Settings,
    options: RunOptions,
    say: Callable[[str], None] = print,
    on_step_event: StepEvent | None = None,
) -> RunResult:
    """Run the whole graph on the configured target."""
    hyperparameters.check_run(settings, options.parameters)
    started = time.monotonic()
    scored = _batch_location(settings, options.batch_input)
    sdk = _import_sdk_meanwhile()
    with s3_endpoint(settings, announce=say) as endpoint:
        # The same on both targets: an S3 URI as given, else the dataset imported into the
        # target's bucket (once; reused when present).
        input_uri = datasets.resolve_input(
            settings,
            endpoint.url,
            settings.dataset,
            options.data or settings.data,
            say,
            skip_bad_images=options.skip_bad_images,
        )
        pretrained = weights.resolve(
            settings, endpoint.url, settings.weights, settings.backbone, say
        )
        options = replace(options, pretrained_uri=pretrained)
        parameters = {"InputData": input_uri, **options.parameters}
        if scored is not None:
            _stage_batch_input(settings, endpoint.url, scored, say)
            options = replace(options, batch_input=scored.uri)
            parameters["BatchInput"] = scored.uri
        sdk.join()
        target = open_target(
            settings, endpoint.url, cache_enabled=options.cache, on_step_event=on_step_event
        )
        target.reconcile(say)
        if target.prepare_image is not None:
            target.prepare_image(say)
        pipeline = build_for(settings, target, options)
        # Ctrl-C or SIGTERM: a local run stops its containers and records itself as Stopped.
        with processes.stop_on_signals():
            execution = target.start(pipeline, parameters)
            stopped = processes.stop_requested()  # the SDK's start() swallows the interrupt
            if stopped is not None:
                raise stopped
        steps = target.wait(execution, [s.name for s in pipeline.steps], say, on_step_event)
        result = _result(settings, target, execution, started, steps)
        result = replace(result, instance_count=int(options.parameters.get(INSTANCE_COUNT, 1)))
        if scored is not None:
            result = _with_batch_output(settings, target, result, scored.uri)
        return result


def _batch_location(settings: Settings, given: str) -> batch.Location | None:
    """Where BatchScore reads: an s3:// prefix as given, or a local folder's staging prefix
    (an empty or missing folder fails here, before anything starts)."""
    if not given:
        return None
    location = batch.locate(
        given, settings.bucket, f"run-{time.strftime('%Y%m%d-%H%M%S')}", "input"
    )
    if location.folder is not None:
        batch.image_files(location.folder)
    return location


def _stage_batch_input(
    settings: Settings, endpoint_url: str, location: batch.Location, say: Callable[[str], None]
) -> None:
    """Upload a local batch input folder to its prefix (an s3:// prefix is used as it is)."""
    from local_mlops.s3 import s3_client

    if location.folder is None:
        return
    names = batch.upload_folder(s3_client(settings, endpoint_url), location.folder, location)
    say(f"Uploaded {len(names)} file(s) from {location.folder} to {location.uri} for BatchScore")


def _with_batch_output(
    settings: Settings, target: Target, result: RunResult, batch_input: str
) -> RunResult:
    """The result with BatchScore's output prefix (per execution) and its ``.out`` count."""
    from local_mlops.pipeline.graph import batch_output_prefix

    execution_id = result.execution_arn.rsplit("/", 1)[-1]
    output = f"{batch_output_prefix(target.bucket, settings.pipeline_name)}/{execution_id}/"
    count = batch.count_outputs(target.session.s3_client, batch.Location(output))
    return replace(result, batch_input=batch_input, batch_output=output, batch_outputs=count)


def _import_sdk_meanwhile() -> threading.Thread:
    """Import the graph (and with it the SageMaker SDK: seconds of CPU, most of it the SDK's
    JumpStart tables) on another thread while this one starts the emulator and checks the
    dataset and weights in S3, which mostly wait on sockets and subprocesses."""

    import boto3  # noqa: F401  (both threads need it: import it once, here, first)

    def load() -> None:
        import local_mlops.pipeline.graph  # noqa: F401

    thread = threading.Thread(target=load, name="import-sdk", daemon=True)
    thread.start()
    return thread


def _result(
    settings: Settings,
    target: Target,
    execution: Any,
    started: float,
    steps: list[dict[str, Any]],
) -> RunResult:
    """The run's summary, read back from the target the same way on both."""
    description = execution.describe()
    arn = description.get("PipelineExecutionArn", "")
    outcome = target.outcome(settings, execution, arn, steps)
    return RunResult(
        execution_arn=arn,
        status=description.get("PipelineExecutionStatus", "Unknown"),
        failure_reason=description.get("FailureReason", "") or outcome.failure_reason,
        steps=outcome.steps,
        seconds=time.monotonic() - started,
        target=target.name,
        console_url=target.console_url(arn),
        metrics=outcome.metrics,
        model_package=outcome.model_package,
        tuning=outcome.tuning,
        evaluation_uri=outcome.evaluation_uri,
    )
