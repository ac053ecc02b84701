"""The local/cloud switch, in one place.

A ``Target`` carries everything the graph and the commands need that differs between the two:
the SageMaker session, instance types, image URI, role and bucket. ``open_target`` is the only
function that looks at ``settings.target``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from local_mlops.config import Settings
from local_mlops.s3 import FAKE_CREDENTIALS
from local_mlops.targets.base import LOCAL_INSTANCE_TYPE, Target

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

__all__ = ["LOCAL_INSTANCE_TYPE", "Target", "definition_session", "open_target"]


def open_target(
    settings: Settings,
    s3_endpoint: str = "",
    *,
    cache_enabled: bool = True,
    on_step_event: Callable[..., None] | None = None,
) -> Target:
    """The target the settings ask for, with its session ready to build and run the graph."""
    if settings.target == "cloud":
        from local_mlops.targets.cloud import cloud_target

        return cloud_target(settings)
    from local_mlops.targets.local import local_target

    return local_target(settings, s3_endpoint, cache_enabled, on_step_event)


def definition_session(settings: Settings) -> Target:
    """A target good for building and printing the definition only (no Docker, no AWS calls)."""
    import boto3
    from sagemaker.workflow.pipeline_context import LocalPipelineSession

    from local_mlops.targets import cloud
    from local_mlops.targets.telemetry import TelemetryOptOut

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
        serving_image_uri=settings.serving_image_uri,
    )
