"""The ``--cloud`` path against a moto server: AWS APIs emulated, nothing leaves the machine.

``moto_url`` is one moto server subprocess per session on a free loopback port, reset before
each test. ``cloud_env`` points boto3 at it with ``AWS_ENDPOINT_URL`` and fake credentials and
creates the bucket and execution role. ``network_log`` lets only loopback connections through and
records every other DNS lookup or connection, and every URL botocore sends a request to.
``engine`` stands in for the Docker engine (moto has no registry to push to; see test_push.py).
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from cloudkit import ACCOUNT, BUCKET, LOOPBACK, REGION, ROLE_NAME, FakeEngine, NetworkLog

from local_mlops.devenv import dockerhost
from local_mlops.devenv.emulator import MotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    with MotoServer("127.0.0.1") as url:
        yield url


@pytest.fixture
def moto_url(moto_server: str) -> str:
    """The moto server, emptied: every test starts from a blank account."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    return moto_server


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> boto3.Session:
    """The environment a user would have, pointed at moto; returns a session for assertions."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("LOCAL_MLOPS_BUCKET", BUCKET)
    monkeypatch.setenv("LOCAL_MLOPS_ROLE_ARN", f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}")
    return boto3.Session(region_name=REGION)


@pytest.fixture
def cloud_env(aws: boto3.Session) -> boto3.Session:
    """An account with the bucket, the imported digits dataset and the SageMaker execution role."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    # What `local-mlops data import digits` leaves in the bucket (its presence is what run checks).
    for key in ("manifest.jsonl", "classes.json", "shards/images-000.tar"):
        s3.put_object(Bucket=BUCKET, Key=f"datasets/digits/{key}", Body=b"seeded by the test")
    aws.client("iam").create_role(
        RoleName=ROLE_NAME,
        AssumeRolePolicyDocument=(
            '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
            '"Principal":{"Service":"sagemaker.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
        ),
    )
    return aws


@pytest.fixture
def network_log(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> NetworkLog:
    """Refuse (and record) any DNS lookup or connection that is not loopback or a unix socket."""
    from botocore.httpsession import URLLib3Session

    log = NetworkLog(moto_url)
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_send = URLLib3Session.send

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK:
            log.refused.append(f"lookup {name}")
            raise socket.gaierror(socket.EAI_NONAME, f"tests/cloud: {name} is off limits")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            log.refused.append(f"connect {address[0]}:{address[1]}")
            raise ConnectionRefusedError(f"tests/cloud: {address[0]} is off limits")
        return real_connect(self, address)

    def send(self: Any, request: Any) -> Any:
        log.botocore_urls.append(request.url)
        return real_send(self, request)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(URLLib3Session, "send", send)
    return log


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """The Docker engine as the code sees it through ``dockerhost.docker_client``."""
    fake = FakeEngine(local_images={"local-mlops-runtime:0.1.0", "local-mlops-serving:0.1.0"})
    monkeypatch.setattr(dockerhost, "docker_client", lambda: fake)
    return fake
