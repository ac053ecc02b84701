"""The local target: SageMaker local mode (extended), the bucket on the S3 emulator."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from local_mlops.config import Settings
from local_mlops.devenv import dockerhost
from local_mlops.s3 import FAKE_CREDENTIALS, s3_client
from local_mlops.targets.base import LOCAL_INSTANCE_TYPE, Target


def local_target(
    settings: Settings,
    s3_endpoint: str,
    cache_enabled: bool,
    on_step_event: Callable[..., None] | None,
) -> Target:
    import boto3

    from local_mlops.stores.registry import LocalModelRegistry
    from local_mlops.stores.runstore import RunStore
    from local_mlops.targets.localmode.session import ExtendedLocalPipelineSession

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
