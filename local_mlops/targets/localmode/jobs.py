"""The local SageMaker client, extended: job containers we can inspect, and no telemetry.

``LocalSagemakerClient`` runs each job in a fresh temp folder (``docker run`` for one host,
``dockerrun.py``; ``docker-compose up`` for several) and streams its output to ``sys.stdout`` in
the calling thread. We need more from a job than that
stream: its container's exit code (to tell a kill from a script error), its log (for the tuning
objective and the step's log tail) — per job, even with trials running in parallel threads.
Every job container carries compose's ``com.docker.compose.project.working_dir`` label (the
job's temp folder), so after the job we find its containers by that label and ask Docker directly.

The SDK deletes each host's folder when a job ends, ``output/failure`` with it: SageMaker's
``FailureReason`` is that file, so ``JobContainer`` reads it first and a failed job's error
leads with the reason a host wrote (a lost peer, bad data) in one line.

Each job holds its cores of the machine's core budget (``cores.py``) while it runs, so jobs of
concurrent runs queue instead of oversubscribing the CPU.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sagemaker.local.entities import _LocalProcessingJob, _LocalTrainingJob
from sagemaker.local.image import _SageMakerContainer
from sagemaker.local.local_session import LocalSagemakerClient

from local_mlops.errors import LocalMlopsError
from local_mlops.targets.localmode.artifacts import retrieve_artifacts
from local_mlops.targets.localmode.dockerrun import (
    WORKING_DIR_LABEL,
    docker_run_command,
    ensure_network,
)
from local_mlops.targets.localmode.outcomes import JobFailedError, JobOutcome
from local_mlops.targets.localmode.retry import Failure
from local_mlops.targets.localmode.runs import EXECUTION_LABEL, ExtendedLocalPipeline
from local_mlops.targets.localmode.transform import TransformJobs

logger = logging.getLogger(__name__)

# What the image reads for its thread count (containers/mlops_container/contract.py).
NUM_CPUS_ENV = "SM_NUM_CPUS"

# Where a job's script writes why it failed (SageMaker reads it as the job's FailureReason).
FAILURE_FILE = "output/failure"
REASON_MAX_CHARS = 1024  # SageMaker's FailureReason limit


def read_failure_reasons(container_root: str | None, hosts: list[str]) -> dict[str, str]:
    """The first line of each host's ``output/failure`` (hosts that wrote none are left out)."""
    reasons = {}
    for host in hosts if container_root else []:
        path = Path(str(container_root), host, FAILURE_FILE)
        try:
            text = path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
        if text:
            reasons[host] = text.splitlines()[0][:REASON_MAX_CHARS]
    return reasons


class JobContainer(_SageMakerContainer):
    """The SDK's job runner, keeping each host's failure reason before it deletes the hosts'
    folders (``_cleanup`` runs in ``train``'s and ``process``'s ``finally``), writing a
    training job's archives without compressing them (``artifacts.py``), and starting a
    one-host job with ``docker run`` rather than compose (``dockerrun.py``)."""

    failure_reasons: dict[str, str]
    compose_data: dict | None = None
    network_isolation = False  # the job's EnableNetworkIsolation (one host: no network at all)

    def _generate_compose_file(
        self, command: str, additional_volumes: Any = None, additional_env_vars: Any = None
    ) -> dict:
        self.compose_data = super()._generate_compose_file(
            command, additional_volumes, additional_env_vars
        )
        return self.compose_data

    def _compose(self, detached: bool = False) -> list[str]:
        argv = None
        if not detached and self.compose_data is not None and not self.is_studio:
            argv = docker_run_command(
                self.compose_data, str(self.container_root), self.network_isolation
            )
        if argv is None:
            return super()._compose(detached)
        if not self.network_isolation:
            ensure_network()
        logger.info("docker command: %s", " ".join(argv))
        return argv

    def retrieve_artifacts(
        self, compose_data: dict, output_data_config: dict, job_name: str
    ) -> str:
        return retrieve_artifacts(self, compose_data, output_data_config, job_name)

    def _cleanup(self, dirs_to_delete: Any = None) -> None:
        self.failure_reasons = read_failure_reasons(self.container_root, list(self.hosts))
        super()._cleanup(dirs_to_delete)


def processing_container(
    session: Any, app_specification: dict, processing_resources: dict
) -> JobContainer:
    """A processing job's runner, as the SDK's ``create_processing_job`` makes it (2.257.7)."""
    return JobContainer(
        processing_resources["ClusterConfig"]["InstanceType"],
        processing_resources["ClusterConfig"]["InstanceCount"],
        app_specification["ImageUri"],
        sagemaker_session=session,
        container_entrypoint=app_specification.get("ContainerEntrypoint"),
        container_arguments=app_specification.get("ContainerArguments"),
    )


def job_reason(container: Any) -> str:
    """The reason the job's hosts wrote, one line: one host's, or each host's after its name."""
    reasons: dict[str, str] = getattr(container, "failure_reasons", None) or {}
    distinct = list(dict.fromkeys(reasons.values()))
    if len(distinct) <= 1:
        return distinct[0] if distinct else ""
    return "; ".join(f"{host}: {reason}" for host, reason in reasons.items())


def job_containers(container_root: str) -> list[Any]:
    """The job's containers (docker SDK objects, inspected), found by compose's label."""
    from local_mlops.devenv.dockerhost import docker_client

    label = f"{WORKING_DIR_LABEL}={container_root}"
    return list(docker_client().containers.list(all=True, filters={"label": label}))


def inspect_job_containers(outcome: JobOutcome) -> list[Any]:
    """Fill exit code, OOM flag and log from the job's containers (found by compose label);
    returns them. Through the engine's API: three ``docker`` CLI processes per job cost 0.13 s."""
    if not outcome.container_root:
        return []
    containers = job_containers(outcome.container_root)
    outcome.container_ids = [c.short_id for c in containers]
    logs = []
    for container in containers:
        state = container.attrs.get("State") or {}
        code = int(state.get("ExitCode") or 0)
        if outcome.exit_code in (None, 0) or code >= SIGNAL_EXIT:
            outcome.exit_code = code or outcome.exit_code  # a killed host wins (lost instance)
        outcome.oom_killed = outcome.oom_killed or bool(state.get("OOMKilled"))
        text = container.logs().decode("utf-8", "replace")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        logs.append((_log_order(code), text))
    # Several hosts: the log of the one that said why it failed (exit 1 or 2) comes last, so the
    # failure's log tail ends with the reason rather than with a killed host's last epoch.
    outcome.log = "".join(text for _, text in sorted(logs, key=lambda pair: pair[0]))
    return containers


def remove_in_background(containers: list[Any]) -> None:
    """Remove a finished job's containers while the run goes on (the engine's work, ~70 ms a
    container, off the run's path). Not a daemon thread: the process waits for it at exit, and
    the run's cleanup removes whatever is still there."""

    def remove() -> None:
        from docker.errors import DockerException

        for container in containers:
            try:
                container.remove(force=True)
            except DockerException as exc:  # gone already, or being removed by the cleanup
                logger.debug("container %s not removed here: %s", container.short_id, exc)

    if containers:
        threading.Thread(target=remove, name="job-container-removal").start()


SIGNAL_EXIT = 128


def _log_order(code: int) -> int:
    """Succeeded hosts first, then hosts killed by a signal, then hosts that failed with a reason."""
    return 0 if code == 0 else 1 if code >= SIGNAL_EXIT else 2


class ExtendedLocalSagemakerClient(TransformJobs, LocalSagemakerClient):
    """Training and processing jobs with inspectable outcomes; pipelines with more step types.

    ``create_training_job`` / ``create_processing_job`` mirror the SDK's bodies (2.257.7) so we
    keep the ``_SageMakerContainer`` and know the job's folder. They and ``create_pipeline`` /
    ``create_model`` are also not wrapped by the SDK's telemetry decorator.
    """

    def __init__(self, sagemaker_session: Any = None) -> None:
        super().__init__(sagemaker_session)
        self._local = threading.local()
        self.outcomes: dict[str, JobOutcome] = {}
        self._outcomes_lock = threading.Lock()
        # Set by the step machinery: how many jobs run side by side (tuning trials) and who to
        # tell that a job waits for cores ("" once it has them).
        self.parallel_jobs = 1
        self.on_wait: Callable[[str], None] | None = None

    @contextlib.contextmanager
    def _cores(self, job_name: str) -> Iterator[int]:
        """Hold this job's share of the core budget while it runs; yields how many cores it
        holds (0 without a budget). One hold per job, however many containers (hosts) it runs."""
        budget = getattr(self.sagemaker_session, "core_budget", None)
        if budget is None:
            yield 0
            return
        local = (getattr(self.sagemaker_session, "config", None) or {}).get("local") or {}
        labels = (local.get("container_config") or {}).get("labels") or {}
        holder = {"execution": labels.get(EXECUTION_LABEL, ""), "job": job_name}
        cores = budget.cores_for(self.parallel_jobs)
        with budget.hold(cores, holder, self.on_wait):
            yield min(cores, budget.total)

    # per-thread "what did the last job do", read by the step machinery after a step attempt
    def take_last_outcome(self) -> JobOutcome | None:
        outcome = getattr(self._local, "outcome", None)
        self._local.outcome = None
        return outcome

    def _finish(self, outcome: JobOutcome, error: BaseException | None) -> None:
        from docker.errors import DockerException

        try:
            remove_in_background(inspect_job_containers(outcome))
        except (OSError, DockerException, LocalMlopsError) as exc:
            logger.warning("could not inspect the containers of job %s: %s", outcome.job_name, exc)
        if error is not None:
            outcome.failure = Failure(
                message=f"{type(error).__name__}: {error}",
                exit_code=outcome.exit_code,
                oom_killed=outcome.oom_killed,
                container_started=bool(outcome.container_ids),
            )
        self._local.outcome = outcome
        with self._outcomes_lock:
            self.outcomes[outcome.job_name] = outcome

    def _raise_failed(self, outcome: JobOutcome, error: BaseException, reason: str = "") -> None:
        """The job's error: the reason its hosts wrote when there is one (one line; the log tail
        is the step's ``LogTail``), else the SDK's error and the last log lines."""
        detail = f" (container exit code {outcome.exit_code})" if outcome.exit_code else ""
        if reason:
            raise JobFailedError(f"{reason}{detail}", outcome) from error
        tail = "\n".join(outcome.log_tail[-10:])
        message = f"{type(error).__name__}: {error}{detail}"
        if tail:
            message += f"\nLast log lines:\n{tail}"
        raise JobFailedError(message, outcome) from error

    def create_training_job(  # type: ignore[override]
        self,
        TrainingJobName: str,
        AlgorithmSpecification: dict,
        OutputDataConfig: dict,
        ResourceConfig: dict,
        InputDataConfig: list | None = None,
        Environment: dict | None = None,
        **kwargs: Any,
    ) -> None:
        container = JobContainer(
            ResourceConfig["InstanceType"],
            ResourceConfig["InstanceCount"],
            AlgorithmSpecification["TrainingImage"],
            sagemaker_session=self.sagemaker_session,
        )
        container.network_isolation = bool(kwargs.get("EnableNetworkIsolation"))
        if AlgorithmSpecification.get("ContainerEntrypoint"):
            container.container_entrypoint = AlgorithmSpecification["ContainerEntrypoint"]
        if AlgorithmSpecification.get("ContainerArguments"):
            container.container_arguments = AlgorithmSpecification["ContainerArguments"]
        training_job = _LocalTrainingJob(container)
        outcome = JobOutcome(TrainingJobName, None)
        hosts = int(ResourceConfig["InstanceCount"])
        try:
            with self._cores(TrainingJobName) as cores:
                # The job's cores are shared by its containers (hosts) on this one machine.
                threads = {NUM_CPUS_ENV: str(max(1, cores // hosts))} if cores else {}
                training_job.start(
                    InputDataConfig or [],
                    OutputDataConfig,
                    kwargs.get("HyperParameters", {}),
                    {**threads, **(Environment or {})},
                    TrainingJobName,
                )
        except Exception as error:  # the SDK raises bare RuntimeError/ValueError: classify all
            outcome.container_root = getattr(container, "container_root", None)
            self._finish(outcome, error)
            self._raise_failed(outcome, error, job_reason(container))
        outcome.container_root = container.container_root
        self._finish(outcome, None)
        LocalSagemakerClient._training_jobs[TrainingJobName] = training_job

    def create_processing_job(  # type: ignore[override]
        self,
        ProcessingJobName: str,
        AppSpecification: dict,
        ProcessingResources: dict,
        Environment: dict | None = None,
        ProcessingInputs: list | None = None,
        ProcessingOutputConfig: dict | None = None,
        **kwargs: Any,
    ) -> None:
        container = processing_container(
            self.sagemaker_session, AppSpecification, ProcessingResources
        )
        network = kwargs.get("NetworkConfig") or {}
        container.network_isolation = bool(network.get("EnableNetworkIsolation"))
        processing_job = _LocalProcessingJob(container)
        outcome = JobOutcome(ProcessingJobName, None)
        try:
            with self._cores(ProcessingJobName):
                processing_job.start(
                    ProcessingInputs or [],
                    ProcessingOutputConfig or {},
                    Environment or {},
                    ProcessingJobName,
                )
        except Exception as error:  # noqa: BLE001 - classified and re-raised
            outcome.container_root = getattr(container, "container_root", None)
            self._finish(outcome, error)
            self._raise_failed(outcome, error, job_reason(container))
        outcome.container_root = container.container_root
        self._finish(outcome, None)
        LocalSagemakerClient._processing_jobs[ProcessingJobName] = processing_job

    def create_model(
        self, ModelName: str, PrimaryContainer: dict, *args: Any, **kwargs: Any
    ) -> None:  # type: ignore[override]
        # The undecorated SDK body: no telemetry.
        LocalSagemakerClient.create_model.__wrapped__(  # type: ignore[attr-defined]
            self, ModelName, PrimaryContainer, *args, **kwargs
        )

    def create_pipeline(  # type: ignore[override]
        self, pipeline: Any, pipeline_description: Any, **kwargs: Any
    ) -> dict:
        local_pipeline = ExtendedLocalPipeline(
            pipeline=pipeline,
            pipeline_description=pipeline_description,
            local_session=self.sagemaker_session,
        )
        # Class-level dict shared by every client: the SDK's own lookups go through it.
        LocalSagemakerClient._pipelines[pipeline.name] = local_pipeline
        return {"PipelineArn": pipeline.name}

    def update_pipeline(  # type: ignore[override]
        self, pipeline: Any, pipeline_description: Any, **kwargs: Any
    ) -> dict:
        existing = LocalSagemakerClient._pipelines.get(pipeline.name)
        if (
            not isinstance(existing, ExtendedLocalPipeline)
            or existing.local_session is not self.sagemaker_session
        ):
            # Made by another session (the dict is shared): rebind it to this one.
            return self.create_pipeline(pipeline, pipeline_description, **kwargs)
        return super().update_pipeline(pipeline, pipeline_description, **kwargs)


class LocalJobClient(TransformJobs, LocalSagemakerClient):
    """The SDK's local client for one-off jobs (the monitoring job), with transform jobs as
    ``transform.py`` runs them and processing jobs in a ``JobContainer``."""

    def create_processing_job(  # type: ignore[override]
        self,
        ProcessingJobName: str,
        AppSpecification: dict,
        ProcessingResources: dict,
        Environment: dict | None = None,
        ProcessingInputs: list | None = None,
        ProcessingOutputConfig: dict | None = None,
        **kwargs: Any,
    ) -> None:
        # The SDK's body (2.257.7) with JobContainer for _SageMakerContainer, undecorated.
        container = processing_container(
            self.sagemaker_session, AppSpecification, ProcessingResources
        )
        network = kwargs.get("NetworkConfig") or {}
        container.network_isolation = bool(network.get("EnableNetworkIsolation"))
        processing_job = _LocalProcessingJob(container)
        processing_job.start(
            ProcessingInputs or [],
            ProcessingOutputConfig or {},
            Environment or {},
            ProcessingJobName,
        )
        LocalSagemakerClient._processing_jobs[ProcessingJobName] = processing_job
