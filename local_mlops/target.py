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

from local_mlops.config import Settings
from local_mlops.emulator import FAKE_CREDENTIALS, s3_client

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

LOCAL_INSTANCE_TYPE = "local"
# The SDK sends telemetry to AWS unless this is in the session's config (see localmode/session.py
# for what it costs and why it is held in memory rather than loaded from a file).
TELEMETRY_OPT_OUT_CONFIG: dict[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}


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
    import boto3
    from sagemaker.workflow.pipeline_context import PipelineSession

    from local_mlops.cloudstores import CloudModelRegistry, CloudRunStore

    boto_session = boto3.Session(region_name=settings.region, profile_name=settings.profile or None)
    session = PipelineSession(
        boto_session=boto_session,
        default_bucket=settings.bucket,
        sagemaker_config=TELEMETRY_OPT_OUT_CONFIG,
    )
    return Target(
        name="cloud",
        session=session,
        image_uri=settings.image_uri,
        role_arn=settings.role_arn,
        bucket=settings.bucket,
        region=settings.region,
        processing_instance_type=settings.processing_instance_type,
        training_instance_type=settings.training_instance_type,
        registry=CloudModelRegistry(session.sagemaker_client),
        runstore=CloudRunStore(session.sagemaker_client, settings.pipeline_name),
    )


def definition_session(settings: Settings) -> Target:
    """A target good for building and printing the definition only (no Docker, no AWS calls)."""
    import boto3
    from sagemaker.workflow.pipeline_context import LocalPipelineSession, PipelineSession

    boto_session = boto3.Session(region_name=settings.region, **FAKE_CREDENTIALS)
    if settings.target == "cloud":
        session: Any = PipelineSession(
            boto_session=boto_session,
            default_bucket=settings.bucket,
            sagemaker_config=TELEMETRY_OPT_OUT_CONFIG,
        )
        types = (settings.processing_instance_type, settings.training_instance_type)
    else:
        session = LocalPipelineSession(
            boto_session=boto_session,
            s3_endpoint_url="http://127.0.0.1:1",
            default_bucket=settings.bucket,
        )
        session.sagemaker_config = TELEMETRY_OPT_OUT_CONFIG
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
