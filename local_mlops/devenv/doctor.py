"""Prerequisite checks, each with the fix for when it fails."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from local_mlops import s3
from local_mlops.config import Settings
from local_mlops.devenv import dockerhost, emulator
from local_mlops.errors import LocalMlopsError, brief_error
from local_mlops.targets.base import kind_of

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def check_docker(settings: Settings) -> Check:
    try:
        version = dockerhost.docker_client().version().get("Version", "?")
    except LocalMlopsError as exc:
        return Check("Docker engine", FAIL, exc.message, exc.fix or "")
    return Check("Docker engine", OK, f"engine {version}")


def check_compose(settings: Settings) -> Check:
    shim_dir = settings.state_path / "bin"
    info = dockerhost.detect_compose(shim_dir)
    if not info.usable:
        return Check(
            "Docker Compose",
            FAIL,
            "neither `docker compose` nor `docker-compose` found",
            "apt-get install docker-compose, or install the Docker compose plugin",
        )
    if info.needs_shim:
        dockerhost.ensure_sdk_compose(shim_dir)
        return Check(
            "Docker Compose",
            OK,
            f"plugin {info.version}; SDK v2 rejects it, so local-mlops uses its shim in {shim_dir}",
        )
    return Check("Docker Compose", OK, f"{info.flavour} {info.version}, usable by the SDK")


def _check_image(name: str, uri: str) -> Check:
    if not dockerhost.docker_available():
        return Check(name, FAIL, "cannot check: Docker is not reachable", "start Docker")
    if dockerhost.image_exists(uri):
        size = dockerhost.image_size(uri) / 1e9
        return Check(name, OK, f"{uri} ({size:.2f} GB)")
    return Check(name, FAIL, f"{uri} is not built", "local-mlops build")


def check_image(settings: Settings) -> Check:
    return _check_image("Runtime image", settings.image_uri)


def check_serving_image(settings: Settings) -> Check:
    return _check_image("Serving image", settings.serving_image_uri)


def check_s3(settings: Settings) -> Check:
    url = settings.s3_endpoint or emulator.devenv_url(settings)
    if not url or not emulator.is_reachable(url):
        where = url or "the dev environment"
        return Check(
            "S3 emulator",
            WARN,
            f"nothing answers at {where}; commands will start an embedded emulator each time",
            "local-mlops up",
        )
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3.s3_client(settings, url).head_bucket(Bucket=settings.bucket)
    except (BotoCoreError, ClientError):
        return Check(
            "S3 bucket", FAIL, f"s3://{settings.bucket} is missing at {url}", "local-mlops up"
        )
    return Check("S3 emulator", OK, f"{url}, bucket s3://{settings.bucket}")


def check_cloud(settings: Settings) -> list[Check]:
    """Region, credentials, the project's stack, execution role and bucket on the account."""
    from botocore.exceptions import BotoCoreError, ClientError

    from local_mlops.account import aws, stack

    try:
        session = aws.session(settings)
    except LocalMlopsError as exc:
        return [Check("AWS region", FAIL, exc.message, exc.fix or "")]
    checks = [Check("AWS region", OK, settings.region)]
    try:
        checks.append(Check("AWS credentials", OK, aws.identity(session)["arn"]))
    except LocalMlopsError as exc:
        checks.append(Check("AWS credentials", FAIL, exc.message, exc.fix or ""))
        return checks
    try:
        found = stack.describe(session, settings)
        checks.append(
            Check("Cloud stack", OK, f"{found.name} {found.status}")
            if found and found.healthy
            else Check(
                "Cloud stack",
                WARN,
                f"{stack.stack_name(settings)} is {found.status if found else 'not created'}",
                "local-mlops cloud init (or bring your own role_arn and bucket)",
            )
        )
    except LocalMlopsError as exc:
        checks.append(Check("Cloud stack", WARN, exc.message, exc.fix or ""))
    role_name = settings.role_arn.rsplit("/", 1)[-1]
    try:
        session.client("iam").get_role(RoleName=role_name)
        checks.append(Check("Execution role", OK, settings.role_arn))
    except (BotoCoreError, ClientError) as exc:
        checks.append(
            Check(
                "Execution role",
                FAIL,
                brief_error(exc),
                "local-mlops cloud init, or set role_arn to a SageMaker execution role",
            )
        )
    try:
        session.client("s3").head_bucket(Bucket=settings.bucket)
        checks.append(Check("S3 bucket", OK, f"s3://{settings.bucket}"))
    except (BotoCoreError, ClientError) as exc:
        checks.append(
            Check(
                "S3 bucket",
                FAIL,
                brief_error(exc),
                f"local-mlops cloud init, or create s3://{settings.bucket} and set bucket",
            )
        )
    return checks


LOCAL_CHECKS: list[Callable[[Settings], Check]] = [
    check_docker,
    check_compose,
    check_image,
    check_serving_image,
    check_s3,
]


def run_checks(settings: Settings) -> list[Check]:
    """The checks the target needs: the emulator's bucket, or the AWS account's side."""
    kind = kind_of(settings)
    checks = [check(settings) for check in LOCAL_CHECKS if kind.uses_emulator or check != check_s3]
    if kind.checks_account:
        checks += check_cloud(settings)
    return checks


def summary(checks: list[Check]) -> dict[str, Any]:
    return {"ok": all(c.status != FAIL for c in checks), "checks": [c.as_dict() for c in checks]}
