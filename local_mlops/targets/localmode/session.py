"""``ExtendedLocalPipelineSession``: SageMaker local mode that runs the product's whole graph.

The SDK's local pipeline executor rejects RegisterModel and Tuning steps and has no caching or
retries. This session extends it by subclassing only (see ``execution.py`` for the hooks):

    ExtendedLocalPipelineSession._initialize  -> installs ExtendedLocalSagemakerClient
    ExtendedLocalSagemakerClient.create_pipeline -> ExtendedLocalPipeline
    ExtendedLocalPipeline.start  -> ExtendedPipelineExecution + ExtendedPipelineExecutor,
                                    then removes the run's containers and temp folders

Telemetry. The SDK's ``_telemetry_emitter`` (on ``Pipeline.create/start``, ``Estimator.fit`` and
the local client's ``create_*`` methods) sends a request to AWS unless
``SageMaker.PythonSDK.Modules.TelemetryOptOut`` is true in the session's ``sagemaker_config``.
But any non-empty ``sagemaker_config`` makes *every* SDK config lookup run
``jsonschema.validate`` against the SDK's full schema: 52-57 ms each, all of it in
``check_schema``. Measured here (2 cores) for the 6-step train/evaluate/register graph of the
integration tests, building + upserting + running it:

- opt-out dict set in memory on the session (no file): 92 lookups, 4.2 s of validation per run
  (45 lookups / 2.0 s building the graph, 47 / 2.1 s in ``start()``); the documented YAML route
  (``SAGEMAKER_USER_CONFIG_OVERRIDE``) costs the same lookups plus loading the file.
- chosen: ``sagemaker_config`` is a property that returns the opt-out dict only to the
  telemetry decorator (recognised by its module in the caller's frames) and the session's own,
  normally empty, config to everything else; the client's ``create_*`` overrides call the SDK
  bodies without the decorator. Validation then runs once per decorated public call
  (``Pipeline.create``, ``Pipeline.start``, ``Estimator.fit``): 4 lookups, 0.23 s per run.
  Same graph, build+upsert 2.40 s -> 0.48 s, ``start()`` 4.29 s -> 2.91 s; no request leaves.
  Nothing is patched; ``tests/unit/localmode/test_telemetry.py`` proves the decorator still reads
  ``TelemetryOptOut = True`` through this path, so an SDK change fails loudly.
"""

from __future__ import annotations

import logging
from typing import Any

from sagemaker.local.local_session import LocalSession
from sagemaker.workflow.pipeline_context import LocalPipelineSession

from local_mlops.stores.registry import LocalModelRegistry
from local_mlops.stores.runstore import RunStore
from local_mlops.targets.localmode.cache import StepCache
from local_mlops.targets.localmode.cores import CoreBudget
from local_mlops.targets.localmode.jobs import ExtendedLocalSagemakerClient, LocalJobClient
from local_mlops.targets.telemetry import TelemetryOptOut

# What the SDK's waits count as still running (``_processing_job_status``, 2.257.7).
IN_PROGRESS = ("InProgress", "Stopping", "Starting")

logger = logging.getLogger(__name__)


class ExtendedLocalPipelineSession(TelemetryOptOut, LocalPipelineSession):
    """A ``LocalPipelineSession`` whose pipelines run RegisterModel and Tuning steps, with caching,
    retries, a persistent run record and step events.

    ``on_step_event(execution_id, step_name, status, record)`` is called when a step starts
    (``Executing``), waits for cores (``Waiting``, ``record["Waiting"]`` says for whom), finishes
    (``Succeeded``/``Failed``) or is about to be retried (``Retrying``). With ``core_budget``, its
    jobs share the machine's cores with every other run's (``cores.py``).
    """

    def __init__(
        self,
        boto_session: Any,
        s3_endpoint_url: str | None = None,
        default_bucket: str | None = None,
        registry: LocalModelRegistry | None = None,
        runstore: RunStore | None = None,
        cache_enabled: bool = True,
        max_parallel_trials: int = 2,
        on_step_event: Any = None,
        core_budget: CoreBudget | None = None,
        account_id: str = "000000000000",
        disable_local_code: bool = False,
        default_bucket_prefix: str | None = None,
        project: str = "",
    ) -> None:
        # The value of the project label on every container the session starts (the state dir).
        self.project = project
        self.cache_enabled = cache_enabled
        self.max_parallel_trials = max(1, max_parallel_trials)
        self.on_step_event = on_step_event
        self.core_budget = core_budget
        self.local_account_id = account_id
        # LocalPipelineSession.__init__ only forwards these; call LocalSession's directly.
        LocalSession.__init__(
            self,
            boto_session=boto_session,
            default_bucket=default_bucket,
            s3_endpoint_url=s3_endpoint_url,
            disable_local_code=disable_local_code,
            default_bucket_prefix=default_bucket_prefix,
        )
        bucket = self.default_bucket()
        self.registry = registry or LocalModelRegistry(
            self.s3_client, bucket, self.boto_region_name, account_id
        )
        self.runstore = runstore or RunStore(self.s3_client, bucket)
        self.step_cache = StepCache(self.s3_client, bucket)

    def _initialize(
        self, boto_session: Any, sagemaker_client: Any, *args: Any, **kwargs: Any
    ) -> None:
        super()._initialize(boto_session, sagemaker_client, *args, **kwargs)
        self.sagemaker_client = ExtendedLocalSagemakerClient(self)

    def arn(self, resource: str, name: str) -> str:
        """A cloud-shaped ARN for a local resource."""
        return (
            f"arn:aws:sagemaker:{self.boto_region_name}:{self.local_account_id}:{resource}/{name}"
        )


class LocalJobSession(TelemetryOptOut, LocalSession):
    """Local mode for one-off jobs started directly, not captured into a pipeline (monitoring,
    batch transform), without telemetry.

    A ``LocalPipelineSession`` turns ``Transformer.transform`` into step arguments; this one runs
    it, through ``LocalJobClient`` (transform jobs as ``transform.py`` runs them).
    ``on_transform_record(done, total, key)`` is told of each record written.

    A local job runs inside its ``create_*`` call, so it has ended when the SDK waits for it;
    the SDK's wait (``_wait_until``) sleeps its poll interval, 5 s, before the first describe.
    The waits here describe at once and fall back to the SDK's only for a job still running.
    """

    def __init__(self, *args: Any, project: str = "", **kwargs: Any) -> None:
        self.project = project
        self.on_transform_record: Any = None
        super().__init__(*args, **kwargs)

    def _initialize(
        self, boto_session: Any, sagemaker_client: Any, *args: Any, **kwargs: Any
    ) -> None:
        super()._initialize(boto_session, sagemaker_client, *args, **kwargs)
        self.sagemaker_client = LocalJobClient(self)

    def wait_for_transform_job(self, job: str, poll: int = 5) -> dict[str, Any]:
        described = self.sagemaker_client.describe_transform_job(TransformJobName=job)
        ended = self._ended(job, described, "TransformJobStatus")
        return ended or dict(super().wait_for_transform_job(job, poll))

    def wait_for_processing_job(self, job: str, poll: int = 5) -> dict[str, Any]:
        described = self.sagemaker_client.describe_processing_job(ProcessingJobName=job)
        ended = self._ended(job, described, "ProcessingJobStatus")
        return ended or dict(super().wait_for_processing_job(job, poll))

    @staticmethod
    def _ended(job: str, described: dict, field: str) -> dict[str, Any] | None:
        """The job's description when it has ended (checked as the SDK checks it), else None.
        Not through the SDK's ``_*_job_status``: they print a status mark (``!``) without a
        newline, which ran into the next line of the command's output."""
        from sagemaker.session import _STATUS_CODE_TABLE, _check_job_status

        status = _STATUS_CODE_TABLE.get(described[field], described[field])
        if status in IN_PROGRESS:
            return None
        _check_job_status(job, described, field)
        return dict(described)
