"""`up`, `doctor`, `down` as a user runs them: the bucket survives down/up."""

from __future__ import annotations

import json
import socket

import pytest
from typer.testing import CliRunner

from local_mlops.cli.app import app
from local_mlops.config import load_settings
from local_mlops.devenv.emulator import devenv_url
from local_mlops.s3 import s3_client

pytestmark = pytest.mark.docker
runner = CliRunner()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def doctor() -> dict[str, dict[str, str]]:
    result = runner.invoke(app, ["doctor", "--json"])
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_up_doctor_down_up_keeps_the_bucket(
    runtime_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_MLOPS_EMULATOR_PORT", str(free_port()))
    monkeypatch.setenv("LOCAL_MLOPS_BUCKET", "devenv-test")
    settings = load_settings()
    try:
        result = runner.invoke(app, ["up"])
        assert result.exit_code == 0, result.output
        checks = doctor()
        assert {c["status"] for c in checks.values()} == {"ok"}, checks
        client = s3_client(settings, devenv_url(settings))
        client.put_object(Bucket="devenv-test", Key="keep/me.txt", Body=b"still here")

        status = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
        assert any(
            s["name"] == "s3-emulator" and s["state"] == "running" for s in status["services"]
        )

        assert runner.invoke(app, ["down"]).exit_code == 0
        after_down = doctor()["S3 emulator"]
        assert after_down["status"] == "warn" and after_down["fix"] == "local-mlops up"

        assert runner.invoke(app, ["up"]).exit_code == 0
        body = client.get_object(Bucket="devenv-test", Key="keep/me.txt")["Body"].read()
        assert body == b"still here"
    finally:
        runner.invoke(app, ["down"])


def test_up_right_after_a_command_that_used_the_embedded_emulator(
    runtime_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --local` without `up` approves its version on the embedded emulator, then deploys,
    which needs a lasting one: `up` waits for the idle embedded server to exit (it checks twice a
    second) instead of refusing, and the bucket the command wrote is the dev environment's."""
    from local_mlops.devenv.emulator import s3_endpoint

    monkeypatch.setenv("LOCAL_MLOPS_EMULATOR_PORT", str(free_port()))
    monkeypatch.setenv("LOCAL_MLOPS_BUCKET", "devenv-handover")
    settings = load_settings()
    with s3_endpoint(settings) as endpoint:
        assert endpoint.kind == "embedded"
        s3_client(settings, endpoint.url).put_object(
            Bucket="devenv-handover", Key="from/the-run.txt", Body=b"written before up"
        )
    try:
        result = runner.invoke(app, ["up"])
        assert result.exit_code == 0, result.output
        client = s3_client(settings, devenv_url(settings))
        body = client.get_object(Bucket="devenv-handover", Key="from/the-run.txt")["Body"].read()
        assert body == b"written before up"
    finally:
        runner.invoke(app, ["down"])
