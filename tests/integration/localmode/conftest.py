"""Fixtures for the extended local mode: the tiny image, a moto S3 server on the Docker bridge."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from local_mlops.devenv import dockerhost
from local_mlops.devenv.emulator import MotoServer

TINY_IMAGE = "local-mlops-tiny:test"
TINY_IMAGE_DIR = Path(__file__).resolve().parents[1] / "tiny_image"
REGION = "us-east-1"
ROLE = "arn:aws:iam::000000000000:role/LocalMlopsTest"


@pytest.fixture(scope="session")
def tiny_image() -> str:
    """Build the tiny SageMaker-contract image once per session (layer cache makes reruns fast)."""
    subprocess.run(
        ["docker", "build", "-q", "-t", TINY_IMAGE, str(TINY_IMAGE_DIR)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return TINY_IMAGE


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A moto server on the bridge address: the same URL works from the host and containers."""
    with MotoServer(dockerhost.bridge_address()) as url:
        yield url


@pytest.fixture
def boto_session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="local-mlops", aws_secret_access_key="local-mlops", region_name=REGION
    )


@pytest.fixture
def bucket(moto_url: str, boto_session: boto3.Session) -> str:
    """A fresh bucket per test."""
    name = f"lm-test-{uuid.uuid4().hex[:10]}"
    boto_session.client("s3", endpoint_url=moto_url).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3(moto_url: str, boto_session: boto3.Session) -> Any:
    return boto_session.client("s3", endpoint_url=moto_url)


@pytest.fixture
def make_session(moto_url: str, boto_session: boto3.Session, bucket: str) -> Any:
    from local_mlops.targets.localmode import ExtendedLocalPipelineSession

    def make(**kwargs: Any) -> ExtendedLocalPipelineSession:
        return ExtendedLocalPipelineSession(
            boto_session=boto_session, s3_endpoint_url=moto_url, default_bucket=bucket, **kwargs
        )

    return make
