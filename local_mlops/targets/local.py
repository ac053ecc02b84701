"""The local target: SageMaker local mode (extended), the bucket on the S3 emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

from local_mlops.config import Settings
from local_mlops.devenv import dockerhost, processes
from local_mlops.pipeline import steps as pipeline_steps
from local_mlops.s3 import boto_session as boto_session_for
from local_mlops.s3 import s3_client
from local_mlops.targets import reports
from local_mlops.targets.base import (
    FAKE_CREDENTIALS,
    LOCAL_INSTANCE_TYPE,
    Outcome,
    Say,
    StepEvent,
    Target,
)


class LocalTarget(Target):
    """Local mode's ``start()`` returns when the execution is over; its records are in the bucket."""

    def start(self, pipeline: Any, parameters: dict[str, Any]) -> Any:
        """Create (locally the same as upsert: the local client replaces the pipeline) and start.

        The SDK's bodies are called without their telemetry decorator: the session opts out of
        telemetry anyway, and the decorator's one config lookup validates the opt-out config
        against the SDK's whole JSON schema, 0.15 s a call (three calls a run, upsert included).
        """
        from sagemaker.workflow.pipeline import Pipeline

        Pipeline.create.__wrapped__(pipeline, role_arn=self.role_arn)  # type: ignore[attr-defined]
        return Pipeline.start.__wrapped__(pipeline, parameters=parameters)  # type: ignore[attr-defined]

    def reconcile(self, say: Say) -> None:
        from local_mlops.devenv import orphans

        project = getattr(self.session, "project", "")
        for line in orphans.reconcile(project, self.runs).messages():
            say(line)

    def wait(
        self, execution: Any, step_names: list[str], say: Say, on_step_event: StepEvent | None
    ) -> list[dict[str, Any]]:
        steps = execution.list_steps()
        if isinstance(steps, dict):
            steps = steps.get("PipelineExecutionSteps", [])
        return list(steps)

    def outcome(
        self, settings: Settings, execution: Any, arn: str, steps: list[dict[str, Any]]
    ) -> Outcome:
        record = self.runs.get(arn) if self.runstore is not None else {}
        step_executions = getattr(execution, "step_execution", {})
        evaluate = getattr(step_executions.get(pipeline_steps.EVALUATE), "properties", None) or {}
        outputs = (evaluate.get("ProcessingOutputConfig") or {}).get("Outputs", [])
        uri = reports.report_uri(reports.evaluation_output_uri(outputs))
        return Outcome(
            steps=record.get("Steps", steps),
            failure_reason=record.get("FailureReason", ""),
            metrics=reports.evaluation_metrics(self.session.s3_client, uri),
            model_package=reports.registered_by(self.models, settings.model_package_group, arn),
            tuning=_tuning(
                getattr(step_executions.get(pipeline_steps.TUNE), "properties", None) or {}
            ),
            evaluation_uri=uri,
        )

    @contextmanager
    def job_session(self) -> Iterator[Any]:
        from local_mlops.targets.localmode.runs import _run_config, _run_root, cleanup_run
        from local_mlops.targets.localmode.session import LocalJobSession

        session = self.session
        jobs = LocalJobSession(
            boto_session=session.boto_session,
            s3_endpoint_url=self.s3_endpoint,
            default_bucket=self.bucket,
            project=getattr(session, "project", ""),
        )
        job_id = uuid4().hex[:12]
        project = getattr(session, "project", "")
        root = _run_root(session, job_id, project)
        jobs.config = _run_config(session.config, root, job_id, project)
        try:
            yield jobs
        finally:
            cleanup_run(job_id, root)

    def console_url(self, execution_arn: str) -> str:
        return f"local-mlops runs describe {execution_arn.rsplit('/', 1)[-1]}"


def _tuning(properties: dict[str, Any]) -> dict[str, Any] | None:
    """The tuning step's trials (best first) and its best job, as DescribeHyperParameterTuningJob."""
    if "BestTrainingJob" not in properties:
        return None
    return {
        "BestTrainingJob": reports.trial(properties["BestTrainingJob"]),
        "Trials": [reports.trial(s) for s in properties.get("TrainingJobSummaries", [])],
    }


def open_target(
    settings: Settings,
    s3_endpoint: str,
    cache_enabled: bool,
    on_step_event: Callable[..., None] | None,
) -> Target:
    from local_mlops.stores.registry import LocalModelRegistry
    from local_mlops.stores.runstore import RunStore
    from local_mlops.targets.localmode.cores import CoreBudget
    from local_mlops.targets.localmode.session import ExtendedLocalPipelineSession

    # SDK v2 looks for Docker Compose before any local job (and runs several-host jobs with it),
    # and may not recognise the one installed (dockerhost.py).
    dockerhost.ensure_sdk_compose(settings.state_path / "bin")
    boto_session = boto_session_for(settings.region, **FAKE_CREDENTIALS)
    client = s3_client(settings, s3_endpoint)
    registry = LocalModelRegistry(client, settings.bucket, settings.region)
    runstore = RunStore(client, settings.bucket, pending_dir=settings.state_path / "pending-runs")
    runstore.flush_pending()
    session = ExtendedLocalPipelineSession(
        boto_session=boto_session,
        s3_endpoint_url=s3_endpoint,
        default_bucket=settings.bucket,
        registry=registry,
        runstore=runstore,
        cache_enabled=cache_enabled,
        on_step_event=on_step_event,
        core_budget=CoreBudget(settings.state_path / "cores", settings.local_cores or None),
        project=processes.project_of(settings),
    )
    # Local mode refuses to mount from /root, ~/.config and other sensitive paths, so job
    # folders live under the system temp dir.
    container_root = processes.work_root()
    session.config = {"local": {"local_code": True, "container_root": str(container_root)}}
    return LocalTarget(
        name="local",
        session=session,
        image_uri=settings.image_uri,
        serving_image_uri=settings.serving_image_uri,
        role_arn=settings.role_arn,
        bucket=settings.bucket,
        region=settings.region,
        processing_instance_type=LOCAL_INSTANCE_TYPE,
        training_instance_type=LOCAL_INSTANCE_TYPE,
        s3_endpoint=s3_endpoint,
        registry=registry,
        runstore=runstore,
    )


def definition_target(settings: Settings) -> Target:
    """A local target good for building the definition only (no Docker, no S3 calls)."""
    from sagemaker.workflow.pipeline_context import LocalPipelineSession

    from local_mlops.targets.telemetry import TelemetryOptOut

    class DefinitionLocalSession(TelemetryOptOut, LocalPipelineSession):  # type: ignore[misc]
        """Builds local definitions without telemetry."""

    session = DefinitionLocalSession(
        boto_session=boto_session_for(settings.region, **FAKE_CREDENTIALS),
        s3_endpoint_url="http://127.0.0.1:1",
        default_bucket=settings.bucket,
    )
    # Session.default_bucket() checks the bucket over S3; a definition needs only its name.
    session._default_bucket = settings.bucket
    return LocalTarget(
        "local",
        session,
        settings.image_uri,
        settings.role_arn,
        settings.bucket,
        settings.region,
        LOCAL_INSTANCE_TYPE,
        LOCAL_INSTANCE_TYPE,
        serving_image_uri=settings.serving_image_uri,
    )
