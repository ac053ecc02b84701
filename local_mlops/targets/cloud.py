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
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from local_mlops.account import aws
from local_mlops.account.tags import project_tags
from local_mlops.config import Settings
from local_mlops.devenv import image
from local_mlops.errors import LocalMlopsError, brief_error
from local_mlops.pipeline import contract
from local_mlops.pipeline import steps as pipeline_steps
from local_mlops.targets import reports
from local_mlops.targets.base import Outcome, Say, StepEvent, Target

POLL_SECONDS = 15  # between status polls of a SageMaker execution (its steps take minutes)

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


class CloudTarget(Target):
    """SageMaker Pipelines: ``start()`` returns at once; the execution is polled until it ends."""

    def wait(
        self, execution: Any, step_names: list[str], say: Say, on_step_event: StepEvent | None
    ) -> list[dict[str, Any]]:
        """Poll until the execution ends, reporting step changes; returns its steps.

        When the step list cannot be read (moto answers HTTP 500; a role may lack the
        permission), the steps are reported as Unknown and the run is followed by its overall
        status alone.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        arn = execution.arn
        execution_id = arn.rsplit("/", 1)[-1]
        say(f"Started {execution_id} on SageMaker; follow it at {self.console_url(arn)}")
        seen: dict[str, str] = {}
        steps: list[dict[str, Any]] = []
        listable = True
        while True:
            status = execution.describe().get("PipelineExecutionStatus", "Unknown")
            if listable:
                try:
                    steps = list(execution.list_steps())
                except (BotoCoreError, ClientError) as exc:
                    listable = False
                    say(
                        f"Cannot list the execution's steps ({brief_error(exc)}): "
                        "showing them as Unknown."
                    )
                    steps = [{"StepName": name, "StepStatus": "Unknown"} for name in step_names]
            for step in steps:
                name, step_status = step.get("StepName", ""), step.get("StepStatus", "Unknown")
                if on_step_event and seen.get(name) != step_status:
                    on_step_event(execution_id, name, step_status, step)
                seen[name] = step_status
            if status not in ("Executing", "Stopping"):
                return steps
            time.sleep(POLL_SECONDS)

    def outcome(
        self, settings: Settings, execution: Any, arn: str, steps: list[dict[str, Any]]
    ) -> Outcome:
        """Read back from SageMaker: the model package the execution registered (the
        RegisterModel step's ARN, else the package generated by the execution), and the
        evaluation report in S3 (the Evaluate job's output, else where the package's model
        metrics point, else the step's default output prefix)."""
        by_name = {step.get("StepName"): step.get("Metadata") or {} for step in steps}
        package_arn = (by_name.get(pipeline_steps.REGISTER, {}).get("RegisterModel") or {}).get(
            "Arn"
        )
        package = (
            self.models.describe(package_arn)
            if package_arn
            else reports.registered_by(self.models, settings.model_package_group, arn)
        )
        job = (by_name.get(pipeline_steps.EVALUATE, {}).get("ProcessingJob") or {}).get("Arn", "")
        uri = (
            self._job_report_uri(job)
            or reports.package_report_uri(package)
            or reports.report_uri(
                f"s3://{self.bucket}/{settings.pipeline_name}/{arn.rsplit('/', 1)[-1]}/"
                f"{pipeline_steps.EVALUATE}/output/{contract.EVALUATION_OUTPUT}"
            )
        )
        tuning_job = (by_name.get(pipeline_steps.TUNE, {}).get("TuningJob") or {}).get("Arn", "")
        return Outcome(
            steps=steps,
            metrics=reports.evaluation_metrics(self.session.s3_client, uri),
            model_package=package,
            tuning=self._tuning(tuning_job) if tuning_job else None,
            evaluation_uri=uri,
        )

    def _job_report_uri(self, job_arn: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        if not job_arn:
            return ""
        try:
            job = self.session.sagemaker_client.describe_processing_job(
                ProcessingJobName=job_arn.rsplit("/", 1)[-1]
            )
        except (BotoCoreError, ClientError):
            return ""
        outputs = (job.get("ProcessingOutputConfig") or {}).get("Outputs", [])
        return reports.report_uri(reports.evaluation_output_uri(outputs))

    def _tuning(self, tuning_job_arn: str) -> dict[str, Any] | None:
        """The tuning job's best trial and its trials, best first."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.session.sagemaker_client
        name = tuning_job_arn.rsplit("/", 1)[-1]
        try:
            best = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name).get(
                "BestTrainingJob"
            )
            trials = client.list_training_jobs_for_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=name,
                SortBy="FinalObjectiveMetricValue",
                SortOrder="Descending",
            ).get("TrainingJobSummaries", [])
        except (BotoCoreError, ClientError):
            return None
        if not best:
            return None
        return {
            "BestTrainingJob": reports.trial(best),
            "Trials": [reports.trial(t) for t in trials],
        }

    def job_session(self) -> AbstractContextManager[Any]:
        session = _job_session_class()(
            boto_session=self.session.boto_session, default_bucket=self.bucket
        )
        return nullcontext(session)

    def console_url(self, execution_arn: str) -> str:
        pipeline = execution_arn.split("/")[1] if "/" in execution_arn else ""
        return (
            f"https://{self.region}.console.aws.amazon.com/sagemaker/home?region={self.region}"
            f"#/pipelines/{pipeline}/executions/{execution_arn.rsplit('/', 1)[-1]}"
        )


def open_target(
    settings: Settings,
    s3_endpoint: str = "",
    cache_enabled: bool = True,
    on_step_event: Callable[..., None] | None = None,
) -> Target:
    """The SageMaker Pipelines target: images in ECR, the registry and history in the account."""
    from local_mlops.stores.cloud import CloudModelRegistry, CloudRunStore

    aws = boto_session(settings)
    session = pipeline_session(settings, aws)
    return CloudTarget(
        name="cloud",
        session=session,
        image_uri=image_uri(settings, aws),
        serving_image_uri=image_uri(settings, aws, serving=True),
        role_arn=settings.role_arn,
        bucket=settings.bucket,
        region=settings.region,
        processing_instance_type=settings.processing_instance_type,
        training_instance_type=settings.training_instance_type,
        transform_instance_type=settings.transform_instance_type,
        registry=CloudModelRegistry(session.sagemaker_client),
        runstore=CloudRunStore(session.sagemaker_client, settings.pipeline_name),
        prepare_image=lambda say: push_images(settings, say, session=aws),
        upsert_tags=project_tags(settings, "local-mlops run"),
    )


def definition_target(settings: Settings) -> Target:
    """A cloud target good for building the definition only (no AWS calls)."""
    import boto3

    from local_mlops.targets.base import FAKE_CREDENTIALS

    session = pipeline_session(
        settings, boto3.Session(region_name=settings.region, **FAKE_CREDENTIALS)
    )
    # Session.default_bucket() checks the bucket over S3; a definition needs only its name.
    session._default_bucket = settings.bucket
    return CloudTarget(
        "cloud",
        session,
        settings.image_uri,
        settings.role_arn,
        settings.bucket,
        settings.region,
        settings.processing_instance_type,
        settings.training_instance_type,
        serving_image_uri=settings.serving_image_uri,
        transform_instance_type=settings.transform_instance_type,
    )


@lru_cache(maxsize=1)
def _job_session_class() -> type:
    from sagemaker.session import Session

    from local_mlops.targets.telemetry import TelemetryOptOut

    class CloudJobSession(TelemetryOptOut, Session):  # type: ignore[misc]
        """A Session that starts jobs at once, keeping SDK telemetry on this machine."""

    return CloudJobSession
