"""``Target``: what the graph and the commands need that differs between local and cloud."""

from __future__ import annotations

from collections.abc import Callable
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
    # Puts the images where the target's jobs pull them from (cloud: pushes to ECR); None: nothing.
    prepare_image: Callable[[Callable[[str], None]], Any] | None = None
    # The lean ONNX Runtime image that models and endpoints run ("" in hand-made targets: the
    # runtime image, which serves too).
    serving_image_uri: str = ""

    @property
    def model_image_uri(self) -> str:
        """The image registered models and CreateModel reference."""
        return self.serving_image_uri or self.image_uri

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
