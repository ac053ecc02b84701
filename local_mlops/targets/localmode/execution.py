"""A local pipeline execution with more step types, caching, retries, events and a run record.

Hooks into the SDK (2.257.7), all by subclassing:
- ``_LocalPipelineExecution._initialize_step_execution``: accepts RegisterModel and Tuning steps
  (the SDK rejects them at start) and makes every step record an ``ExtendedExecutionStep``.
- ``_LocalPipelineExecutionStep._step_type_to_output_format_map``: metadata for the two new types,
  so ``list_steps()`` works; records also carry attempts, log tail and ``CacheHitResult``.
- ``LocalPipelineExecutor._execute_step``: cache lookup/store and the retry loop around the step
  executor from ``ExtendedStepExecutorFactory``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from sagemaker.local.entities import _LocalPipelineExecution, _LocalPipelineExecutionStep
from sagemaker.local.exceptions import StepExecutionException
from sagemaker.local.pipeline import LocalPipelineExecutor
from sagemaker.workflow.entities import PipelineVariable
from sagemaker.workflow.execution_variables import ExecutionVariable
from sagemaker.workflow.functions import Join
from sagemaker.workflow.steps import Step, StepTypeEnum

from local_mlops.devenv.processes import Owner, stop_requested
from local_mlops.targets.localmode.cache import Lookup, cache_key, step_cache_config
from local_mlops.targets.localmode.executors import ExtendedStepExecutorFactory
from local_mlops.targets.localmode.identity import ContentIdentity
from local_mlops.targets.localmode.retry import (
    Failure,
    classify_failure,
    next_retry_delay,
    retry_rules,
)

logger = logging.getLogger(__name__)

StepEventCallback = Callable[[str, str, str, dict], None]
SUPPORTED_STEP_TYPES = (
    StepTypeEnum.TRAINING,
    StepTypeEnum.PROCESSING,
    StepTypeEnum.TRANSFORM,
    StepTypeEnum.CONDITION,
    StepTypeEnum.FAIL,
    StepTypeEnum.CREATE_MODEL,
    StepTypeEnum.REGISTER_MODEL,
    StepTypeEnum.TUNING,
)
CACHEABLE_STEP_TYPES = (StepTypeEnum.TRAINING, StepTypeEnum.PROCESSING, StepTypeEnum.TUNING)


def _iso(timestamp: float | None) -> str | None:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat() if timestamp else None


class ExtendedExecutionStep(_LocalPipelineExecutionStep):
    """A step record that knows RegisterModel/Tuning metadata, attempts, log tail, cache hits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._step_type_to_output_format_map[StepTypeEnum.REGISTER_MODEL] = (
            self._construct_register_model_metadata
        )
        self._step_type_to_output_format_map[StepTypeEnum.TUNING] = self._construct_tuning_metadata
        self.attempts = 0
        self.log_tail: list[str] = []
        self.cache_hit: dict | None = None
        self.cache_decision: dict | None = None  # {"Hit", "Reason", "SourceExecutionId"}
        self.failure_type: str | None = None
        self.last_failure: Failure | None = None
        self.waiting = ""  # "waiting for cores (run X holds them)" while its job queues

    def _construct_register_model_metadata(self) -> dict:
        return {"RegisterModel": {"Arn": self.properties["ModelPackageArn"]}}

    def _construct_tuning_metadata(self) -> dict:
        return {"TuningJob": {"Arn": self.properties["HyperParameterTuningJobArn"]}}

    def mark_step_executing(self) -> None:
        # A retry keeps the first attempt's start time, as SageMaker reports it.
        first_start: float | None = getattr(self, "start_time", None)
        super().mark_step_executing()
        if first_start and self.attempts > 1:
            self.start_time = first_start
        self.end_time = None
        self.failure_reason = None

    def to_list_steps_response(self) -> dict:
        response = super().to_list_steps_response()
        if self.cache_hit:
            response["CacheHitResult"] = dict(self.cache_hit)
        if self.attempts:
            response["AttemptCount"] = self.attempts
        return response

    def to_record(self) -> dict:
        """This step as the run store keeps it."""
        metadata = None
        if self.properties and self.type in self._step_type_to_output_format_map:
            try:
                metadata = self._construct_metadata()
            except KeyError:
                metadata = None
        return {
            "StepName": self.name,
            "StepType": self.type.value,
            "StepStatus": self.status,
            "StartTime": _iso(self.start_time),
            "EndTime": _iso(self.end_time),
            "Attempts": self.attempts,
            "FailureReason": self.failure_reason,
            "LogTail": list(self.log_tail),
            "Metadata": metadata,
            "CacheHitResult": self.cache_hit,
            "Waiting": self.waiting or None,
            "Cache": self.cache_decision,
        }


class ExtendedPipelineExecution(_LocalPipelineExecution):
    """Publishes every step transition to the run store and the event callback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        session = self.local_session
        self.execution_arn = session.arn(
            "pipeline", f"{self.pipeline.name}/execution/{self.pipeline_execution_name}"
        )
        self.owner = Owner.current()
        self._runstore = getattr(session, "runstore", None)
        self._on_event: StepEventCallback | None = getattr(session, "on_step_event", None)
        self._save()

    def _initialize_step_execution(self, steps: Any) -> None:
        for step in steps:
            if not isinstance(step, Step):
                continue
            if step.step_type not in SUPPORTED_STEP_TYPES:
                # Let the SDK raise its own ValidationException for this one.
                super()._initialize_step_execution([step])
                continue
            self.step_execution[step.name] = ExtendedExecutionStep(
                step.name, step.step_type, step.description, step.display_name
            )
            if step.step_type == StepTypeEnum.CONDITION:
                self._initialize_step_execution(step.if_steps + step.else_steps)  # type: ignore[attr-defined]

    # run record
    def to_record(self) -> dict:
        return {
            "PipelineExecutionArn": self.execution_arn,
            "ExecutionId": self.pipeline_execution_name,
            "PipelineName": self.pipeline.name,
            "DisplayName": self.pipeline_execution_display_name,
            "Description": self.pipeline_execution_description,
            "Parameters": dict(getattr(self, "pipeline_parameters", {}) or {}),
            "Status": self.status,
            "FailureReason": self.failure_reason,
            "Owner": self.owner.as_record(),
            "StartTime": _iso(self.creation_time),
            "EndTime": _iso(self.last_modified_time) if self.status != "Executing" else None,
            "Steps": [s.to_record() for s in self.step_execution.values() if s.status is not None],
        }

    def _save(self) -> None:
        if self._runstore is None:
            return
        try:
            self._runstore.save(self.to_record())
        except Exception as exc:  # noqa: BLE001 - a lost progress write must not fail the run
            # Kept locally (the bucket is gone, the watchdog reports it): no need to shout.
            kept = getattr(self._runstore, "pending_dir", None) is not None
            log = logger.info if kept else logger.warning
            log("could not save execution %s: %s", self.pipeline_execution_name, exc)

    def _publish(self, step_name: str, status: str) -> None:
        self._save()
        if self._on_event is not None:
            record = self.step_execution[step_name].to_record()
            self._on_event(self.pipeline_execution_name, step_name, status, record)

    def _take_job_outcome(self, step_name: str) -> None:
        outcome = self.local_session.sagemaker_client.take_last_outcome()
        if outcome is not None:
            record = self.step_execution[step_name]
            record.log_tail = outcome.log_tail
            record.last_failure = outcome.failure

    # SDK hooks
    def mark_step_executing(self, step_name: str) -> None:
        super().mark_step_executing(step_name)
        self._publish(step_name, "Executing")

    def update_step_properties(self, step_name: str, step_properties: dict) -> None:
        self._take_job_outcome(step_name)
        super().update_step_properties(step_name, step_properties)
        self._publish(step_name, "Succeeded")

    def update_step_failure(self, step_name: str, failure_message: str) -> None:
        self._take_job_outcome(step_name)
        try:
            super().update_step_failure(step_name, failure_message)
        finally:
            self._publish(step_name, "Failed")

    def mark_step_cached(self, step_name: str, entry: dict) -> None:
        self.step_execution[step_name].cache_hit = {
            "SourcePipelineExecutionArn": entry["source_execution_arn"]
        }

    def mark_step_waiting(self, step_name: str, message: str) -> None:
        """The step's job queues for cores (``message`` says for whom); "" once it runs."""
        self.step_execution[step_name].waiting = message
        self._publish(step_name, "Waiting" if message else "Executing")

    def mark_step_retrying(self, step_name: str, delay: float) -> None:
        self._publish(step_name, "Retrying")
        logger.info("retrying step %s in %.1f s", step_name, delay)

    def update_execution_success(self) -> None:
        super().update_execution_success()
        self._save()

    def update_execution_failure(self, step_name: str, failure_message: str) -> None:
        super().update_execution_failure(step_name, failure_message)
        self._save()

    def fail_everything(self, reason: str) -> None:
        """The run and any step still executing end Failed with ``reason`` (the emulator died)."""
        now = dt.datetime.now().timestamp()
        for step in self.step_execution.values():
            if step.status in ("Executing", "Starting"):
                step.status, step.failure_reason, step.end_time = "Failed", reason, now
        self.status = "Failed"
        self.failure_reason = reason
        self.last_modified_time = now
        self._save()

    def mark_stopped(self, reason: str) -> None:
        """SageMaker's Stopped: the execution and its unfinished steps, with the reason."""
        now = dt.datetime.now().timestamp()
        stopped = []
        for record in self.step_execution.values():
            if record.status in ("Starting", "Executing"):
                record.status = "Stopped"
                record.failure_reason = reason
                record.end_time = now
                stopped.append(record.name)
        self.status = "Stopped"
        self.failure_reason = reason
        self.last_modified_time = now
        self._save()
        for name in stopped:
            if self._on_event is not None:
                self._on_event(self.pipeline_execution_name, name, "Stopped", {})


class ExtendedPipelineExecutor(LocalPipelineExecutor):
    """The SDK's executor with caching, retries and the extended step factory."""

    def __init__(self, execution: ExtendedPipelineExecution, sagemaker_session: Any) -> None:
        super().__init__(execution, sagemaker_session)
        self._step_executor_factory = ExtendedStepExecutorFactory(self)
        self._identity = ContentIdentity(sagemaker_session.s3_client)

    def _execute_step(self, step: Any) -> None:
        execution: ExtendedPipelineExecution = self.execution
        record: ExtendedExecutionStep = execution.step_execution[step.name]
        record.attempts = 1
        execution.mark_step_executing(step.name)
        cache, decision = self._cache_for(step)
        pipeline_name, step_type = execution.pipeline.name, step.step_type.value
        if cache is not None:
            arguments = self._arguments_for_key(step.arguments, step.name)
            content = self._identity.of(self.evaluate_step_arguments(step))
            request_key = cache_key(pipeline_name, step.name, step_type, arguments)
            key = cache_key(pipeline_name, step.name, step_type, arguments, content)
            _, expire_after = step_cache_config(step)
            decision = cache.lookup(
                pipeline_name,
                step.name,
                step_type,
                key,
                expire_after,
                request_key=request_key,
                content=content,
                arguments=arguments,
            )
        if decision is not None:
            record.cache_decision = decision.as_record()
        if decision is not None and decision.entry is not None:
            execution.mark_step_cached(step.name, decision.entry)
            execution.update_step_properties(step.name, decision.entry["properties"])
            return
        client = self.sagemaker_session.sagemaker_client
        client.on_wait = lambda message: execution.mark_step_waiting(step.name, message)
        try:
            properties = self._run_with_retries(step, record)
        finally:
            client.on_wait = None
        execution.update_step_properties(step.name, properties)
        if cache is not None:
            cache.store(
                pipeline_name,
                step.name,
                step_type,
                key,
                record.properties,
                execution.execution_arn,
                request_key=request_key,
                content=content,
                arguments=arguments,
            )

    def _run_with_retries(self, step: Any, record: ExtendedExecutionStep) -> dict:
        rules = retry_rules(step)
        first_started = dt.datetime.now(dt.UTC)
        while True:
            record.last_failure = None
            try:
                return self._step_executor_factory.get(step).execute()
            except StepExecutionException as exc:
                if getattr(self.sagemaker_session, "emulator_lost", False):
                    raise  # nothing succeeds without the bucket: no retry
                failure = getattr(record, "last_failure", None) or Failure(
                    exc.message or "", container_started=True
                )
                record.failure_type = classify_failure(failure)
                delay = next_retry_delay(rules, record.failure_type, record.attempts, first_started)
                if delay is None or stop_requested():
                    raise
                self.execution.mark_step_retrying(step.name, delay)
                time.sleep(delay)
                record.attempts += 1
                self.execution.mark_step_executing(step.name)

    def _cache_for(self, step: Any) -> tuple[Any, Lookup | None]:
        """The step cache to use (None: do not cache) and, when not, why not."""
        session = self.sagemaker_session
        if step.step_type not in CACHEABLE_STEP_TYPES:
            return None, None
        if not session.cache_enabled:
            return None, Lookup(None, "caching disabled (--no-cache)")
        enabled, _ = step_cache_config(step)
        if not enabled:
            return None, Lookup(None, "caching not enabled for this step (CacheConfig)")
        return session.step_cache, None

    def _arguments_for_key(self, obj: Any, step_name: str) -> Any:
        """Resolved arguments, except execution variables, which stay symbolic.

        Parameters and upstream properties are substituted (a changed input is a miss), but
        the execution id or start time in, say, a default output path must not defeat the cache.
        """
        if isinstance(obj, dict):
            return {k: self._arguments_for_key(v, step_name) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._arguments_for_key(v, step_name) for v in obj]
        if isinstance(obj, ExecutionVariable):
            return obj.expr
        if isinstance(obj, Join):
            return {"Join": [obj.on, [self._arguments_for_key(v, step_name) for v in obj.values]]}
        if isinstance(obj, PipelineVariable):
            return self.evaluate_pipeline_variable(obj, step_name)
        return obj
