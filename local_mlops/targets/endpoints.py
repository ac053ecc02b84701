"""Endpoints on either target (the local/cloud switch for serving): approve, deploy, list, predict, delete.

Approving a version deploys it (``approve`` with ``deploy=True``): locally at once; in the cloud
through this same code path, from the approval command (SageMaker's MLOps template does that
with an EventBridge rule on the package's approval status; here the command is the trigger).
Local endpoints outlive the command, so a local deploy needs an S3 emulator that does too: it
starts the dev environment (``local-mlops up``) when none runs.
"""

from __future__ import annotations

import contextlib
import mimetypes
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError
from local_mlops.serving import local
from local_mlops.serving.policy import DeploymentPolicy

Say = Callable[[str], None]
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def persistent_s3(settings: Settings, say: Say) -> str:
    """An S3 endpoint that outlives this command: configured, or the dev environment's."""
    from local_mlops.devenv import compose, emulator

    if settings.s3_endpoint:
        return settings.s3_endpoint
    url = emulator.devenv_url(settings)
    if url and emulator.is_reachable(url):
        return url
    say("Local endpoints outlive this command, so the dev environment starts too (`up`).")
    return compose.up(settings, say)


@contextlib.contextmanager
def opened(settings: Settings, say: Say, persistent: bool = False) -> Iterator[tuple[Any, str]]:
    """(target, S3 URL) for one command; ``persistent`` keeps the emulator after it."""
    from local_mlops.devenv import emulator
    from local_mlops.targets import open_target

    if persistent and settings.target == "local":
        url = persistent_s3(settings, say)
        yield open_target(settings, url), url
        return
    with emulator.s3_endpoint(settings, announce=say) as endpoint:
        yield open_target(settings, endpoint.url), endpoint.url


def cloud_endpoints(settings: Settings, target: Any, say: Say) -> Any:
    from local_mlops.account.tags import project_tags
    from local_mlops.serving.cloud import CloudEndpoints

    boto_session = target.session.boto_session
    return CloudEndpoints(
        target.session.sagemaker_client,
        boto_session.client("cloudwatch"),
        region=settings.region,
        role_arn=settings.role_arn,
        bucket=settings.bucket,
        say=say,
        base_tags=project_tags(settings, created_by="deploy"),
    )


def deploy(
    settings: Settings,
    say: Say,
    *,
    version: int | None = None,
    endpoint: str | None = None,
    instance_count: int | None = None,
    policy: DeploymentPolicy | None = None,
) -> dict[str, Any]:
    """Deploy a registered version on the settings' target; the endpoint's list view."""
    from local_mlops import s3 as s3_helpers
    from local_mlops.devenv import dockerhost

    policy = policy or DeploymentPolicy.from_settings(settings)
    name = endpoint or settings.endpoint_name
    with opened(settings, say, persistent=True) as (target, url):
        if settings.target == "cloud":
            package = local.resolve_package(target.registry, settings.model_package_group, version)
            cloud = cloud_endpoints(settings, target, say)
            cloud.deploy(
                name,
                package,
                settings.endpoint_image or target.image_uri,
                instance_type=settings.endpoint_instance_type,
                instance_count=instance_count or settings.endpoint_instance_count,
                policy=policy,
                capture=settings.data_capture,
                sampling_percentage=settings.capture_sampling_percentage,
            )
            return dict(cloud.view(name))
        done = local.deploy(
            settings,
            registry=target.registry,
            s3=s3_helpers.s3_client(settings, url),
            s3_url=url,
            docker_client=dockerhost.docker_client(),
            say=say,
            version=version,
            endpoint=name,
            instance_count=instance_count,
            policy=policy,
        )
        return local.endpoint_view(done, settings)


def approve(
    settings: Settings,
    version: int,
    status: str,
    reason: str | None,
    say: Say,
) -> dict[str, Any]:
    """Set a version's approval status (recorded in its history); returns the package."""
    with opened(settings, say) as (target, _):
        return dict(
            target.registry.update_approval(
                f"{settings.model_package_group}/{version}", status, reason
            )
        )


def list_endpoints(settings: Settings, say: Say) -> list[dict[str, Any]]:
    if settings.target == "cloud":
        with opened(settings, say) as (target, _):
            return list(cloud_endpoints(settings, target, say).views())
    from local_mlops.serving.state import EndpointStore

    return [local.endpoint_view(e, settings) for e in EndpointStore(settings.state_path).list()]


def describe_endpoint(settings: Settings, name: str, say: Say) -> dict[str, Any]:
    if settings.target == "cloud":
        with opened(settings, say) as (target, _):
            cloud = cloud_endpoints(settings, target, say)
            return {**cloud.view(name), "description": cloud.find(name)}
    from local_mlops.serving.state import EndpointStore

    return local.describe_view(EndpointStore(settings.state_path).get(name), settings)


def endpoint_metrics(settings: Settings) -> dict[str, Any] | None:
    """Requests, errors and latency over time from the local router (None: no router runs).

    In the cloud these figures are CloudWatch's (``Invocations``, ``ModelLatency``, ...), which
    the dashboard does not read: None there too.
    """
    if settings.target == "cloud":
        return None
    from local_mlops.serving import daemon

    return daemon.router_metrics(settings)


def delete_endpoint(settings: Settings, name: str, say: Say) -> list[str]:
    """Delete an endpoint; locally its captured records are flushed first."""
    if settings.target == "cloud":
        with opened(settings, say) as (target, _):
            return list(cloud_endpoints(settings, target, say).delete(name))
    from local_mlops.devenv import dockerhost

    endpoint = local.local_endpoints(settings, dockerhost.docker_client(), say)
    count = len(endpoint.store.get(name).instances())
    endpoint.delete(name)
    return [f"endpoint {name}", f"{count} container(s)"]


def content_type_of(path: Path) -> str:
    return (
        IMAGE_TYPES.get(path.suffix.lower())
        or mimetypes.guess_type(path.name)[0]
        or "application/x-image"
    )


def predict(settings: Settings, name: str, files: list[Path], top: int = 3) -> list[dict[str, Any]]:
    """Send each image to the endpoint through SageMaker Runtime; the top classes of each.

    An image the model refuses (a 4xx ``ModelError``: unreadable, wrong type, too large) is an
    entry with ``error`` and ``status`` and the other images are still classified; an endpoint
    that cannot be reached or does not exist stops at once."""
    import boto3

    from local_mlops.s3 import FAKE_CREDENTIALS

    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        verb = "is not a file" if len(missing) == 1 else "are not files"
        raise LocalMlopsError(f"{', '.join(missing)} {verb}", "pass image files (PNG or JPEG)")
    if settings.target == "cloud":
        client = boto3.Session(
            region_name=settings.region, profile_name=settings.profile or None
        ).client("sagemaker-runtime")
    else:
        client = boto3.Session(region_name=settings.region, **FAKE_CREDENTIALS).client(
            "sagemaker-runtime", endpoint_url=local.runtime_url(settings)
        )
    return [_predict_one(client, name, path, top) for path in files]


def _predict_one(client: Any, name: str, path: Path, top: int) -> dict[str, Any]:
    import json

    from botocore.exceptions import ClientError, EndpointConnectionError

    try:
        reply = client.invoke_endpoint(
            EndpointName=name,
            Body=path.read_bytes(),
            ContentType=content_type_of(path),
            Accept="application/json",
        )
    except EndpointConnectionError as exc:
        raise LocalMlopsError(
            f"the endpoint router does not answer ({exc})", "start it with `local-mlops up`"
        ) from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = int(exc.response.get("OriginalStatusCode") or 0)
        if error.get("Code") == "ModelError" and 400 <= status < 500:
            return {"file": str(path), "error": _model_message(exc.response), "status": status}
        raise LocalMlopsError(
            f"{path.name}: {error.get('Code')}: {error.get('Message')}",
            "check the endpoint with `local-mlops endpoints describe " + name + "`",
        ) from exc
    answer = json.loads(reply["Body"].read())
    prediction = answer["predictions"][0]
    ranked = sorted(prediction.get("probabilities", {}).items(), key=lambda kv: -kv[1])[:top]
    return {
        "file": str(path),
        "label": prediction.get("label"),
        "top": [{"label": k, "probability": v} for k, v in ranked],
        "variant": reply.get("InvokedProductionVariant"),
    }


def _model_message(response: dict[str, Any]) -> str:
    """The model's own words from a ModelError (its JSON ``error``, else its text)."""
    import json

    original = str(response.get("OriginalMessage") or response.get("Error", {}).get("Message"))
    try:
        parsed = json.loads(original)
    except ValueError:
        return original
    return str(parsed.get("error", original)) if isinstance(parsed, dict) else original


def local_invocations_url(settings: Settings, name: str) -> str:
    """The router URL of a local endpoint (``traffic`` never leaves this machine)."""
    if settings.target == "cloud":
        raise LocalMlopsError(
            "traffic goes to local endpoints only", 'drop --cloud / set target = "local"'
        )
    return f"{local.runtime_url(settings)}/endpoints/{name}/invocations"


def sample_prediction(settings: Settings, name: str, say: Say) -> dict[str, Any] | None:
    """Predict the first image of the run's dataset through the endpoint (the README's finish)."""
    import json
    import tempfile

    from local_mlops import s3 as s3_helpers

    url = persistent_s3(settings, say)
    client = s3_helpers.s3_client(settings, url)
    root = f"datasets/{settings.dataset}"
    try:
        body = client.get_object(Bucket=settings.bucket, Key=f"{root}/manifest.jsonl")["Body"]
        first = json.loads(body.read().decode().splitlines()[0])
    except Exception as exc:
        say(f"No sample prediction: cannot read the {settings.dataset} manifest ({exc}).")
        return None
    ref = str(first["source-ref"])
    bucket, key = (
        ref.removeprefix("s3://").split("/", 1)
        if ref.startswith("s3://")
        else (settings.bucket, f"{root}/{ref}")
    )
    with tempfile.TemporaryDirectory(prefix="local-mlops-sample-") as scratch:
        image = Path(scratch) / Path(key).name
        client.download_file(bucket, key, str(image))
        [result] = predict(settings, name, [image])
    names = [
        v.get("class-name")
        for k, v in first.items()
        if k.endswith("-metadata") and isinstance(v, dict)
    ]
    labels = [v for k, v in first.items() if k != "source-ref" and not k.endswith("-metadata")]
    truth = next((n for n in names if n is not None), labels[0] if labels else None)
    result["true_label"] = None if truth is None else str(truth)
    return result


def approve_and_deploy(
    settings: Settings, package: dict[str, Any], say: Say
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``auto_approve``: approve a run's new version, deploy it, and (locally) try one image."""
    version = int(package["ModelPackageVersion"])
    approve(settings, version, "Approved", "auto_approve: the run passed its accuracy gate", say)
    view = deploy(settings, say, version=version)
    sample = sample_prediction(settings, view["name"], say) if settings.target == "local" else None
    return view, sample
