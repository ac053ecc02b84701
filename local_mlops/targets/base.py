"""``Target``: what the graph and the commands need that differs between local and cloud."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from local_mlops.stores.base import ModelRegistry, RunHistory

LOCAL_INSTANCE_TYPE = "local"


@dataclass
class Target:
    name: str  # "local" | "cloud"
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
    # Puts the image where the target's jobs pull it from (cloud: pushes to ECR); None: nothing.
    prepare_image: Callable[[Callable[[str], None]], Any] | None = None
    # A context manager giving a session that starts jobs at once (a pipeline session only
    # records their arguments); locally it also removes the job's containers and folders after.
    job_session_factory: Callable[[], AbstractContextManager[Any]] | None = None

    def job_session(self) -> AbstractContextManager[Any]:
        """``with target.job_session() as session:`` runs processing jobs now (local: local mode)."""
        if self.job_session_factory is None:
            raise RuntimeError(f"the {self.name} target was opened without a job session")
        return self.job_session_factory()

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

    @property
    def is_local(self) -> bool:
        return self.name == "local"

    def console_url(self, execution_arn: str) -> str:
        """Where a person follows an execution."""
        if self.is_local:
            return f"local-mlops runs describe {execution_arn.rsplit('/', 1)[-1]}"
        pipeline = execution_arn.split("/")[1] if "/" in execution_arn else ""
        return (
            f"https://{self.region}.console.aws.amazon.com/sagemaker/home?region={self.region}"
            f"#/pipelines/{pipeline}/executions/{execution_arn.rsplit('/', 1)[-1]}"
        )
