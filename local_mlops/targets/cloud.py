"""The account side of ``--cloud``: where the runtime image lives in ECR, and pushing it there.

    resolve the repository  settings.image_repository, else ACCOUNT.dkr.ecr.REGION.amazonaws.com/
                            <image_name> with ACCOUNT from STS GetCallerIdentity
    ensure it exists        ECR DescribeRepositories, CreateRepository when missing
    skip when current       ECR DescribeImages(tag) digest is among the local image's RepoDigests
    log in and push         ECR GetAuthorizationToken -> docker login -> tag -> docker push

Every AWS call goes through boto3, so ``AWS_ENDPOINT_URL`` (an emulator such as moto) applies to
all of them. A repository on a registry that is not ECR is pushed to with the engine's own
credentials and no ECR calls.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from local_mlops.account import aws
from local_mlops.config import Settings
from local_mlops.devenv import image
from local_mlops.errors import LocalMlopsError, brief_error
from local_mlops.targets.base import Target

Say = Callable[[str], None]

ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$"
)
CREDENTIALS_FIX = "configure AWS credentials (`aws configure`, or set AWS_PROFILE)"


@dataclass(frozen=True)
class Repository:
    """An image repository: ``uri`` is ``host/name`` (no tag)."""

    uri: str

    @property
    def host(self) -> str:
        return self.uri.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.uri.split("/", 1)[1] if "/" in self.uri else self.uri

    @property
    def ecr(self) -> re.Match[str] | None:
        return ECR_HOST.match(self.host)


def boto_session(settings: Settings) -> Any:
    """The boto3 session for the cloud target (credentials from the usual AWS chain; a profile
    that does not exist or a region without SageMaker is one clear error)."""
    return aws.session(settings)


def pipeline_session(settings: Settings, session: Any) -> Any:
    """A SageMaker ``PipelineSession`` that opts out of telemetry without slowing every call.

    Any non-empty ``sagemaker_config`` makes each SDK config lookup validate it against the SDK's
    full JSON schema (86 lookups to build and upsert this graph: ~5 s idle, 12 s on a busy
    2-core machine). As in local mode (see ``localmode/session.py``), only the SDK's telemetry
    decorator sees ``TelemetryOptOut``; every other lookup sees the user's own config, if any.
    """
    return _session_class()(boto_session=session, default_bucket=settings.bucket)


@lru_cache(maxsize=1)
def _session_class() -> type:
    from sagemaker.workflow.pipeline_context import PipelineSession

    from local_mlops.targets.telemetry import TelemetryOptOut

    class CloudPipelineSession(TelemetryOptOut, PipelineSession):  # type: ignore[misc]
        """A PipelineSession that keeps SDK telemetry on this machine."""

    return CloudPipelineSession


def repository(settings: Settings, session: Any, serving: bool = False) -> Repository:
    """The configured repository, or the account's ECR repository named after the image
    (the runtime image's, or with ``serving`` the serving image's)."""
    from botocore.exceptions import BotoCoreError, ClientError

    configured = settings.serving_image_repository if serving else settings.image_repository
    name = settings.serving_image_name if serving else settings.image_name
    if configured:
        return Repository(configured.rstrip("/"))
    try:
        account = session.client("sts").get_caller_identity()["Account"]
    except (BotoCoreError, ClientError) as exc:
        setting = "serving_image_repository" if serving else "image_repository"
        raise LocalMlopsError(
            f"cannot find the AWS account for the ECR repository ({brief_error(exc)})",
            f"{CREDENTIALS_FIX}, or set {setting} to an ECR repository URI",
        ) from exc
    return Repository(f"{account}.dkr.ecr.{settings.region}.amazonaws.com/{name}")


def image_uri(settings: Settings, session: Any, serving: bool = False) -> str:
    """An image's URI in the cloud: ``repository:tag`` (runtime, or serving)."""
    return f"{repository(settings, session, serving).uri}:{settings.image_tag}"


def _ecr(session: Any, repo: Repository) -> tuple[Any, dict[str, Any]]:
    """An ECR client in the repository's region, and the registryId argument for its account."""
    match = repo.ecr
    assert match is not None
    return session.client("ecr", region_name=match["region"]), {"registryId": match["account"]}


def ensure_repository(session: Any, repo: Repository, say: Say) -> bool:
    """Create the ECR repository when missing; True when it was created."""
    from botocore.exceptions import BotoCoreError, ClientError

    ecr, registry = _ecr(session, repo)
    try:
        ecr.describe_repositories(repositoryNames=[repo.name], **registry)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "RepositoryNotFoundException":
            raise LocalMlopsError(
                f"cannot look up the ECR repository {repo.uri} ({brief_error(exc)})",
                "grant ecr:DescribeRepositories to your credentials",
            ) from exc
    except BotoCoreError as exc:
        raise LocalMlopsError(
            f"cannot reach ECR for {repo.uri} ({exc})", "check your network and AWS_REGION"
        ) from exc
    say(f"Creating the ECR repository {repo.name} ...")
    try:
        ecr.create_repository(repositoryName=repo.name, **registry)
    except (BotoCoreError, ClientError) as exc:
        raise LocalMlopsError(
            f"cannot create the ECR repository {repo.name} ({brief_error(exc)})",
            f"create it (`aws ecr create-repository --repository-name {repo.name}`) "
            "or grant ecr:CreateRepository",
        ) from exc
    return True


def remote_digest(session: Any, repo: Repository, tag: str) -> str:
    """The digest ECR holds under the tag, or "" when there is none."""
    from botocore.exceptions import BotoCoreError, ClientError

    ecr, registry = _ecr(session, repo)
    try:
        found = ecr.describe_images(
            repositoryName=repo.name, imageIds=[{"imageTag": tag}], **registry
        )
    except (BotoCoreError, ClientError):
        # Not there, or not allowed to look: pushing is the safe answer either way.
        return ""
    details = found.get("imageDetails") or [{}]
    return str(details[0].get("imageDigest", ""))


def registry_login(session: Any, repo: Repository) -> dict[str, str]:
    """ECR GetAuthorizationToken, then ``docker login``; returns the push credentials."""
    from botocore.exceptions import BotoCoreError, ClientError

    ecr, registry = _ecr(session, repo)
    try:
        data = ecr.get_authorization_token(registryIds=[registry["registryId"]])
        token = data["authorizationData"][0]
    except (BotoCoreError, ClientError, KeyError, IndexError) as exc:
        raise LocalMlopsError(
            f"cannot get an ECR login token ({brief_error(exc)})",
            "grant ecr:GetAuthorizationToken to your credentials",
        ) from exc
    username, _, password = base64.b64decode(token["authorizationToken"]).decode().partition(":")
    endpoint = str(token.get("proxyEndpoint") or f"https://{repo.host}")
    image.login(endpoint, username, password)
    return {"username": username, "password": password, "serveraddress": endpoint}


def push_runtime_image(
    settings: Settings,
    say: Say,
    on_progress: image.PushProgress | None = None,
    session: Any = None,
    serving: bool = False,
) -> image.PushResult:
    """Put a local image (the runtime one, or with ``serving`` the serving one) in its cloud
    repository, unless it is there already."""
    started = time.monotonic()
    session = session or boto_session(settings)
    repo = repository(settings, session, serving)
    local = settings.serving_image_uri if serving else settings.image_uri
    uri = f"{repo.uri}:{settings.image_tag}"
    local_digests = image.repo_digests(local)
    auth: dict[str, str] | None = None
    if repo.ecr:
        ensure_repository(session, repo, say)
        digest = remote_digest(session, repo, settings.image_tag)
        if digest and f"{repo.uri}@{digest}" in local_digests:
            say(f"{uri} is already in ECR ({digest[:19]}): not pushing it again.")
            return image.PushResult(uri, digest, time.monotonic() - started, skipped=True)
        auth = registry_login(session, repo)
    say(f"Pushing {uri} ..." if uri == local else f"Pushing {local} as {uri} ...")
    digest = image.push(local, uri, auth, on_progress or _layer_reporter(say))
    say(f"Pushed {uri} ({digest[:19]}).")
    return image.PushResult(uri, digest, time.monotonic() - started, skipped=False)


def push_images(
    settings: Settings,
    say: Say,
    on_progress: image.PushProgress | None = None,
    session: Any = None,
) -> list[image.PushResult]:
    """Both images a cloud run needs: runtime (jobs) and serving (models, endpoints)."""
    session = session or boto_session(settings)
    return [
        push_runtime_image(settings, say, on_progress, session, serving=serving)
        for serving in (False, True)
    ]


def _layer_reporter(say: Say) -> image.PushProgress:
    """Progress as one line per finished layer (for callers that draw no progress bar)."""
    done: set[str] = set()

    def report(layer: str, status: str, current: int, total: int) -> None:
        if status in ("Pushed", "Layer already exists") and layer not in done:
            done.add(layer)
            say(f"layer {layer}: {status.lower()} ({len(done)} done)")

    return report


def cloud_target(settings: Settings) -> Target:
    from local_mlops.stores.cloud import CloudModelRegistry, CloudRunStore

    """The SageMaker Pipelines target: images in ECR, the registry and history in the account."""
    aws = boto_session(settings)
    session = pipeline_session(settings, aws)
    return Target(
        name="cloud",
        session=session,
        image_uri=image_uri(settings, aws),
        serving_image_uri=image_uri(settings, aws, serving=True),
        role_arn=settings.role_arn,
        bucket=settings.bucket,
        region=settings.region,
        processing_instance_type=settings.processing_instance_type,
        training_instance_type=settings.training_instance_type,
        registry=CloudModelRegistry(session.sagemaker_client),
        runstore=CloudRunStore(session.sagemaker_client, settings.pipeline_name),
        prepare_image=lambda say: push_images(settings, say, session=aws),
    )
