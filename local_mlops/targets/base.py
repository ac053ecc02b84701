"""What the graph and the commands need that differs between local and cloud.

``TargetKind`` is a target before it is opened (no session, no AWS call): where its bucket lives,
which credentials reach it, what a command checks and asks before it uses it. ``Target`` is an
opened one: the session, instance types, image, stores, and how a started execution is waited for
and read back. ``local.py`` and ``cloud.py`` fill both in; nothing outside this package asks which
target it is.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from local_mlops.config import Settings
from local_mlops.stores.base import ModelRegistry, RunHistory

LOCAL_INSTANCE_TYPE = "local"
# What the S3 emulator (and local mode's job containers) accept; never sent to AWS.
FAKE_CREDENTIALS = {"aws_access_key_id": "local-mlops", "aws_secret_access_key": "local-mlops"}
StepEvent = Callable[[str, str, str, dict[str, Any]], None]
Say = Callable[[str], None]


@dataclass(frozen=True)
class TargetKind:
    """A target as the commands see it before opening it."""

    name: str
    module: str  # the module with ``open_target(...)`` and ``definition_target(settings)``
    uses_emulator: bool  # its bucket lives on the S3 emulator (started when nothing answers)
    checks_account: bool  # doctor and the run preflight check an AWS account
    costs_money: bool  # a run asks before it starts
    fake_credentials: bool  # S3 is reached with FAKE_CREDENTIALS, not the AWS chain
    local_router: bool  # its endpoints answer through the local router (traffic, first report)

    def s3_session_args(self, settings: Settings) -> dict[str, Any]:
        """boto3.Session keyword arguments (besides the region) for the target's S3."""
        if self.fake_credentials:
            return dict(FAKE_CREDENTIALS)
        return {"profile_name": settings.profile} if settings.profile else {}


KINDS = {
    "local": TargetKind(
        "local",
        "local_mlops.targets.local",
        uses_emulator=True,
        checks_account=False,
        costs_money=False,
        fake_credentials=True,
        local_router=True,
    ),
    "cloud": TargetKind(
        "cloud",
        "local_mlops.targets.cloud",
        uses_emulator=False,
        checks_account=True,
        costs_money=True,
        fake_credentials=False,
        local_router=False,
    ),
}


def kind_of(settings: Settings) -> TargetKind:
    """The kind of target the settings ask for."""
    return KINDS[settings.target]


@dataclass
class Outcome:
    """What an execution produced, read back from the target (the same shape on both)."""

    steps: list[dict[str, Any]]
    failure_reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    model_package: dict[str, Any] | None = None
    tuning: dict[str, Any] | None = None
    evaluation_uri: str = ""


@dataclass
class Target:
    name: str  # "local" | "cloud": shown to people, never branched on
    session: Any  # a sagemaker PipelineSession (local: ExtendedLocalPipelineSession)
    image_uri: str
    role_arn: str
    bucket: str
    region: str
    processing_instance_type: str
    training_instance_type: str
    s3_endpoint: str = ""
    registry: ModelRegistry | None = None
    runstore: RunHistory | None = None
    # Puts the images where the target's jobs pull them from (cloud: pushes to ECR); None: nothing.
    prepare_image: Callable[[Say], Any] | None = None
    # Tags the upserted pipeline carries (cloud: the project's, which `cloud down` finds it by).
    upsert_tags: list[dict[str, str]] | None = None
    # The lean ONNX Runtime image that models and endpoints run ("" in hand-made targets: the
    # runtime image, which serves too).
    serving_image_uri: str = ""
    transform_instance_type: str = LOCAL_INSTANCE_TYPE

    @property
    def model_image_uri(self) -> str:
        """The image registered models and CreateModel reference."""
        return self.serving_image_uri or self.image_uri

    def job_session(self) -> AbstractContextManager[Any]:
        """``with target.job_session() as session:`` a session that runs processing jobs at once
        (a pipeline session only records their arguments); locally it also removes the job's
        containers and folders after."""
        raise RuntimeError(f"the {self.name} target runs no one-off jobs")

    @property
    def models(self) -> ModelRegistry:
        """The target's model registry (a definition-only target has none)."""
        if self.registry is None:
            raise RuntimeError(f"the {self.name} target was opened without its stores")
        return self.registry

    @property
    def runs(self) -> RunHistory:
        """The target's run history (a definition-only target has none)."""
        if self.runstore is None:
            raise RuntimeError(f"the {self.name} target was opened without its stores")
        return self.runstore

    def reconcile(self, say: Say) -> None:
        """Settle what killed commands left behind (local: orphaned runs and containers)."""

    def start(self, pipeline: Any, parameters: dict[str, Any]) -> Any:
        """Upsert the pipeline and start an execution."""
        pipeline.upsert(role_arn=self.role_arn, tags=self.upsert_tags)
        return pipeline.start(parameters=parameters)

    def wait(
        self, execution: Any, step_names: list[str], say: Say, on_step_event: StepEvent | None
    ) -> list[dict[str, Any]]:
        """Wait for a started execution to end; its steps (ListPipelineExecutionSteps' shape)."""
        raise NotImplementedError

    def outcome(
        self, settings: Settings, execution: Any, arn: str, steps: list[dict[str, Any]]
    ) -> Outcome:
        """Metrics, the registered version and artifact URIs of an ended execution."""
        raise NotImplementedError

    def console_url(self, execution_arn: str) -> str:
        """Where a person follows an execution."""
        raise NotImplementedError
