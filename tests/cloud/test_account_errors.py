"""Missing credentials, a wrong region, an unknown profile, a missing permission: one red line
each, naming the fix, and nothing created."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from accountkit import SETTINGS_TEXT, flat, project_folder
from typer.testing import CliRunner

from local_mlops.cli.app import app

runner = CliRunner()


@pytest.fixture
def settings_path(aws: boto3.Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return project_folder(tmp_path, monkeypatch)


def _one_error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.count("error:") == 1, result.stderr
    return flat(result.stderr)


def _nothing_created(aws: boto3.Session) -> None:
    assert aws.client("cloudformation").list_stacks()["StackSummaries"] == []
    assert aws.client("s3").list_buckets()["Buckets"] == []


def test_missing_credentials_name_the_credential_chain(
    aws: boto3.Session, settings_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    for args in (["cloud", "init", "--yes"], ["cloud", "status"], ["cloud", "down", "--yes"]):
        stderr = _one_error(args)
        assert "no AWS credentials found" in stderr
        assert "fix: configure AWS credentials: `aws configure`" in stderr
    doctor = runner.invoke(app, ["doctor", "--cloud", "--json"])
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["AWS credentials"]["status"] == "fail"
    assert "aws configure" in checks["AWS credentials"]["fix"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    _nothing_created(aws)


def test_a_wrong_region_is_refused_before_any_call(aws: boto3.Session, settings_path: Path) -> None:
    for args in (
        ["cloud", "init", "--yes", "--region", "us-east-7"],
        ["cloud", "status", "--region", "eu-wst-1"],
        ["run", "--cloud", "--yes", "--region", "us-east-7"],
    ):
        stderr = _one_error(args)
        assert "is not an AWS region where SageMaker runs" in stderr
        assert "fix: pass --region with a region such as us-east-1" in stderr
    assert "(did you mean eu-west-1?)" in _one_error(["cloud", "status", "--region", "eu-wst-1"])
    _nothing_created(aws)


def test_an_unknown_profile_names_the_profiles_command(
    aws: boto3.Session, settings_path: Path
) -> None:
    stderr = _one_error(["cloud", "init", "--yes", "--profile", "nosuch"])
    assert "the AWS profile 'nosuch' is not in your AWS config" in stderr
    assert "aws configure list-profiles" in stderr


@contextlib.contextmanager
def iam_enforced(moto_url: str) -> Iterator[None]:
    """moto checks every request against IAM inside the block (it does not by default)."""

    def set_count(value: str) -> None:
        request = urllib.request.Request(
            f"{moto_url}/moto-api/reset-auth",
            data=value.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form body would reach moto empty
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    set_count("0")
    try:
        yield
    finally:
        set_count("inf")


def test_credentials_without_a_permission_get_the_action_named(
    aws: boto3.Session, settings_path: Path, monkeypatch: pytest.MonkeyPatch, moto_url: str
) -> None:
    iam = aws.client("iam")
    iam.create_user(UserName="newcomer")
    iam.put_user_policy(
        UserName="newcomer",
        PolicyName="read-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["sts:GetCallerIdentity", "cloudformation:DescribeStacks"],
                        "Resource": "*",
                    }
                ],
            }
        ),
    )
    key = iam.create_access_key(UserName="newcomer")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])

    with iam_enforced(moto_url):
        stderr = _one_error(["cloud", "init", "--yes"])

    assert "creating the stack: your credentials may not call cloudformation:CreateStack" in stderr
    assert "fix: allow cloudformation:CreateStack for your IAM user or role" in stderr
    assert key["SecretAccessKey"] not in stderr
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    _nothing_created(aws)


def test_on_aws_a_promise_the_stack_did_not_keep_is_an_error(
    aws: boto3.Session, settings_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's shortfalls are warnings only because the endpoint is an emulator: were it AWS, the
    same gaps would stop init, naming each, and write nothing."""
    import local_mlops.account

    monkeypatch.setattr(local_mlops.account, "emulated", lambda session: False)
    stderr = _one_error(["cloud", "init", "--yes"])
    assert "is CREATE_COMPLETE but the account lacks:" in stderr
    assert "versioning" in stderr and "scan on push" in stderr
    assert settings_path.read_text() == SETTINGS_TEXT


def test_the_endpoint_decides_what_counts_as_an_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    from local_mlops.account import emulated

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    real = boto3.Session(region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    assert emulated(real) is False
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert emulated(boto3.Session(region_name="eu-west-1")) is True
