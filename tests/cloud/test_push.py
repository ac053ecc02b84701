"""Pushing the runtime image to ECR, against moto's ECR API.

moto answers the ECR control plane (repositories, images, authorization tokens) but serves no
Docker registry: its token's ``proxyEndpoint`` is the real ``ACCOUNT.dkr.ecr.REGION.amazonaws.com``.
A real ``docker push`` there would leave the machine, so these tests put a double in place of the
Docker engine (``engine``) that records the login, tag and push it is asked for and answers as an
engine does when it cannot reach the registry. What is proven: the ECR calls, the credentials and
registry handed to the engine, the tag and the repository pushed to, and that a failed push stops
the run with one clear error before anything is created on SageMaker. Not proven here: that the
bytes arrive in a registry (``test_push_registry.py`` pushes for real to a registry on loopback).
"""

from __future__ import annotations

import base64
from typing import Any

import boto3
import pytest
from cloudkit import ACCOUNT, ECR_REPOSITORY, REGION, FakeEngine, NetworkLog
from typer.testing import CliRunner

from local_mlops import __version__
from local_mlops.cli.app import app
from local_mlops.devenv import image

runner = CliRunner()
REGISTRY = f"https://{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
UNREACHABLE = (
    f'Get "{REGISTRY}/v2/": dial tcp: lookup {ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com: no such host'
)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _moto_token(aws: boto3.Session) -> tuple[str, str]:
    token = aws.client("ecr").get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(token["authorizationToken"]).decode().partition(":")
    return user, password


@pytest.mark.parametrize("failure", ["login", "push"])
def test_run_cloud_pushes_to_ecr_and_stops_when_the_push_fails(
    failure: str, cloud_env: boto3.Session, engine: FakeEngine, network_log: NetworkLog
) -> None:
    if failure == "login":
        engine.login_error = UNREACHABLE
    else:
        engine.push_stream = [
            {"status": f"The push refers to repository [{ECR_REPOSITORY}]"},
            {"status": "Preparing", "progressDetail": {}, "id": "5f70bf18a086"},
            {
                "status": "Pushing",
                "progressDetail": {"current": 512, "total": 2048},
                "id": "5f70bf18a086",
            },
            {
                "errorDetail": {"message": "unknown: unexpected response from the registry"},
                "error": "unknown: unexpected response from the registry",
            },
        ]

    result = runner.invoke(app, ["run", "--cloud", "--yes"])

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    # The repository the run derived from the account (STS) now exists in ECR.
    repositories = cloud_env.client("ecr").describe_repositories()["repositories"]
    assert [r["repositoryUri"] for r in repositories] == [ECR_REPOSITORY]
    # The engine was logged in to the registry with ECR's token.
    user, password = _moto_token(cloud_env)
    assert engine.logins == [{"username": user, "password": password, "registry": REGISTRY}]
    # One error line (in a non-terminal, rich's live table leaves no newline before it).
    assert result.stderr.count("error:") == 1, result.stderr
    stderr = _flat(result.stderr)
    if failure == "login":
        assert f"error: docker login to {REGISTRY} failed: {UNREACHABLE}" in stderr
        assert engine.pushes == []
    else:
        uri = f"{ECR_REPOSITORY}:{__version__}"
        assert engine.tags == [(f"local-mlops-runtime:{__version__}", uri)]
        [push] = engine.pushes
        assert (push["repository"], push["tag"]) == (ECR_REPOSITORY, __version__)
        assert push["auth_config"]["username"] == user
        assert push["auth_config"]["password"] == password
        assert f"error: pushing {uri} failed: unknown: unexpected response" in stderr
        assert f"docker push {uri}" in stderr  # the fix names the command to reproduce it
    assert "fix: check that the Docker engine reaches" in stderr
    # No image in the registry: nothing was created or started on SageMaker.
    assert cloud_env.client("sagemaker").list_pipelines()["PipelineSummaries"] == []
    assert network_log.off_emulator() == [] and network_log.refused == []


def test_build_push_uses_the_configured_repository(
    cloud_env: boto3.Session,
    engine: FakeEngine,
    network_log: NetworkLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``build --push``: the build itself is the Docker integration tests' business."""
    repository = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/team/classifier"
    monkeypatch.setenv("LOCAL_MLOPS_IMAGE_REPOSITORY", repository)
    uri = f"{repository}:{__version__}"
    engine.local_images = {uri}  # with a repository configured, the build tags the ECR URI

    def built(settings: Any, spec: Any, say: Any, on_line: Any = None) -> image.BuildResult:
        return image.BuildResult(spec.tag, 1_000_000, 1.0, "offline")

    monkeypatch.setattr(image, "build", built)
    engine.login_error = UNREACHABLE

    result = runner.invoke(app, ["build", "--push"])

    assert result.exit_code == 1, result.output
    names = [
        r["repositoryName"] for r in cloud_env.client("ecr").describe_repositories()["repositories"]
    ]
    assert names == ["team/classifier"]
    assert [login["registry"] for login in engine.logins] == [REGISTRY]
    stderr = _flat(result.stderr)
    assert f"built {uri}" in stderr
    assert "Creating the ECR repository team/classifier" in stderr
    assert f"error: docker login to {REGISTRY} failed" in stderr
    assert network_log.off_emulator() == [] and network_log.refused == []


def test_push_reports_progress_and_the_digest(cloud_env: boto3.Session, engine: FakeEngine) -> None:
    """The engine's push stream becomes layer progress and the digest the registry answered."""
    digest = "sha256:" + "ab" * 32
    engine.push_stream = [
        {"status": "Preparing", "progressDetail": {}, "id": "aaa"},
        {"status": "Pushing", "progressDetail": {"current": 100, "total": 400}, "id": "aaa"},
        {"status": "Pushed", "progressDetail": {}, "id": "aaa"},
        {"status": "Layer already exists", "progressDetail": {}, "id": "bbb"},
        {"status": f"{__version__}: digest: {digest} size: 529"},
        {"progressDetail": {}, "aux": {"Tag": __version__, "Digest": digest, "Size": 529}},
    ]
    seen: list[tuple[str, str, int, int]] = []

    pushed = image.push(
        f"local-mlops-runtime:{__version__}",
        f"{ECR_REPOSITORY}:{__version__}",
        {"username": "AWS", "password": "x"},
        lambda *event: seen.append(event),
    )

    assert pushed == digest
    assert ("aaa", "Pushing", 100, 400) in seen
    assert [e[:2] for e in seen if e[1] != "Pushing"] == [
        ("aaa", "Preparing"),
        ("aaa", "Pushed"),
        ("bbb", "Layer already exists"),
    ]
