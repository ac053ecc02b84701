"""The local/cloud switch, in one place.

A ``Target`` carries everything the graph and the commands need that differs between the two:
the SageMaker session, instance types, image URI, role and bucket. ``open_target`` is the only
function that looks at ``settings.target``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_mlops import dockerhost
from local_mlops.config import Settings
from local_mlops.emulator import FAKE_CREDENTIALS, s3_client

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

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
    registry: Any = None
    runstore: Any = None
    # Puts the image where the target's jobs pull it from (cloud: pushes to ECR); None: nothing.
    prepare_image: Callable[[Callable[[str], None]], Any] | None = None

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


def open_target(
    settings: Settings,
    s3_endpoint: str = "",
    *,
    cache_enabled: bool = True,
    on_step_event: Callable[..., None] | None = None,
) -> Target:
    """The target the settings ask for, with its session ready to build and run the graph."""
    if settings.target == "cloud":
        return _cloud_target(settings)
    return _local_target(settings, s3_endpoint, cache_enabled, on_step_event)


def _local_target(
    settings: Settings,
    s3_endpoint: str,
    cache_enabled: bool,
    on_step_event: Callable[..., None] | None,
) -> Target:
    import boto3

    from local_mlops.localmode.session import ExtendedLocalPipelineSession
    from local_mlops.registry import LocalModelRegistry
    from local_mlops.runstore import RunStore

    # Every local job runs through Docker Compose, which SDK v2 may not recognise (dockerhost.py).
    dockerhost.ensure_sdk_compose(settings.state_path / "bin")
    boto_session = boto3.Session(region_name=settings.region, **FAKE_CREDENTIALS)
    client = s3_client(settings, s3_endpoint)
    registry = LocalModelRegistry(client, settings.bucket, settings.region)
    runstore = RunStore(client, settings.bucket)
    session = ExtendedLocalPipelineSession(
        boto_session=boto_session,
        s3_endpoint_url=s3_endpoint,
        default_bucket=settings.bucket,
        registry=registry,
        runstore=runstore,
        cache_enabled=cache_enabled,
        on_step_event=on_step_event,
    )
    # Local mode refuses to mount from /root, ~/.config and other sensitive paths, so job
    # folders live under the system temp dir.
    container_root = Path(tempfile.gettempdir()) / f"local-mlops-{os.getuid()}"
    container_root.mkdir(parents=True, exist_ok=True)
    session.config = {"local": {"local_code": True, "container_root": str(container_root)}}
    return Target(
        name="local",
        session=session,
        image_uri=settings.image_uri,
        role_arn=settings.role_arn,
        bucket=settings.bucket,
        region=settings.region,
        processing_instance_type=LOCAL_INSTANCE_TYPE,
        training_instance_type=LOCAL_INSTANCE_TYPE,
        s3_endpoint=s3_endpoint,
        registry=registry,
        runstore=runstore,
    )


def _cloud_target(settings: Settings) -> Target:
    from local_mlops import cloud
    from local_mlops.cloudstores import CloudModelRegistry, CloudRunStore

    boto_session = cloud.boto_session(settings)
    session = cloud.pipeline_session(settings, boto_session)
    return Target(
        name="cloud",
        session=session,
        image_uri=cloud.image_uri(settings, boto_session),
        role_arn=settings.role_arn,
        bucket=settings.bucket,
        region=settings.region,
        processing_instance_type=settings.processing_instance_type,
        training_instance_type=settings.training_instance_type,
        registry=CloudModelRegistry(session.sagemaker_client),
        runstore=CloudRunStore(session.sagemaker_client, settings.pipeline_name),
        prepare_image=lambda say: cloud.push_runtime_image(settings, say, session=boto_session),
    )


def definition_session(settings: Settings) -> Target:
    """A target good for building and printing the definition only (no Docker, no AWS calls)."""
    import boto3
    from sagemaker.workflow.pipeline_context import LocalPipelineSession

    from local_mlops import cloud
    from local_mlops.telemetry import TelemetryOptOut

    class DefinitionLocalSession(TelemetryOptOut, LocalPipelineSession):  # type: ignore[misc]
        """Builds local definitions without telemetry."""

    boto_session = boto3.Session(region_name=settings.region, **FAKE_CREDENTIALS)
    session: Any
    if settings.target == "cloud":
        session = cloud.pipeline_session(settings, boto_session)
        types = (settings.processing_instance_type, settings.training_instance_type)
    else:
        session = DefinitionLocalSession(
            boto_session=boto_session,
            s3_endpoint_url="http://127.0.0.1:1",
            default_bucket=settings.bucket,
        )
        types = (LOCAL_INSTANCE_TYPE, LOCAL_INSTANCE_TYPE)
    # Session.default_bucket() checks the bucket over S3; a definition needs only its name.
    session._default_bucket = settings.bucket
    return Target(
        settings.target,
        session,
        settings.image_uri,
        settings.role_arn,
        settings.bucket,
        settings.region,
        *types,
    )
