"""Local endpoints for the commands: settings, registry, Docker and the router wired together."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError
from local_mlops.serving import daemon
from local_mlops.serving import state as st
from local_mlops.serving.capture import CAPTURE_PREFIX
from local_mlops.serving.deploy import LocalEndpoints, ModelSpec
from local_mlops.serving.fleet import DockerInstances, fetch_model
from local_mlops.serving.policy import DeploymentPolicy

Say = Callable[[str], None]


class DaemonRouter:
    """``RouterControl`` through the router process's admin routes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def reload(self) -> None:
        daemon.reload_router(self.settings)

    def stats(self) -> dict[str, Any]:
        return daemon.router_stats(self.settings)

    def flush(self) -> int:
        return daemon.flush_router(self.settings)


def runtime_url(settings: Settings) -> str:
    """The base URL to pass as ``endpoint_url`` to boto3's sagemaker-runtime client."""
    return f"http://{daemon.HOST}:{settings.router_port}"


def endpoint_view(endpoint: st.Endpoint, settings: Settings) -> dict[str, Any]:
    """One endpoint as ``endpoints list --json`` prints it."""
    base = runtime_url(settings)
    return {
        "name": endpoint.name,
        "status": endpoint.status,
        "version": endpoint.version,
        "variants": [
            {
                "name": v.name,
                "instance_count": v.instance_count,
                "weight": v.weight,
                "fleets": [
                    {"version": f.version, "weight": f.weight, "instances": len(f.instances)}
                    for f in v.fleets
                ],
            }
            for v in endpoint.variants
        ],
        "url": f"{base}/endpoints/{endpoint.name}/invocations",
        "runtime_endpoint_url": base,
    }


def describe_view(endpoint: st.Endpoint, settings: Settings) -> dict[str, Any]:
    return {**endpoint_view(endpoint, settings), "document": endpoint.to_dict()}


def resolve_package(registry: Any, group: str, version: int | None) -> dict[str, Any]:
    """The package to deploy: ``version``, else the newest Approved one."""
    if version is not None:
        package = dict(registry.describe(f"{group}/{version}"))
        if package.get("ModelApprovalStatus") == "Rejected":
            raise LocalMlopsError(
                f"model version {version} is Rejected",
                f"approve it first: `local-mlops models approve {version}`",
            )
        return package
    approved = [
        p for p in registry.list_packages(group) if p.get("ModelApprovalStatus") == "Approved"
    ]
    if not approved:
        raise LocalMlopsError(
            f"no approved version in model package group {group}",
            "approve one (`local-mlops models approve N`) or pass --version",
        )
    return dict(approved[-1])


def model_data_url(package: dict[str, Any]) -> str:
    containers = package.get("InferenceSpecification", {}).get("Containers") or [{}]
    url = containers[0].get("ModelDataUrl")
    if not url:
        raise LocalMlopsError(
            f"model package {package.get('ModelPackageArn')} has no ModelDataUrl",
            "register the version with its model artifact",
        )
    return str(url)


def model_spec(settings: Settings, package: dict[str, Any], s3: Any) -> ModelSpec:
    """Fetch the package's model.tar.gz into the state dir (once) and say what to run."""
    group = package["ModelPackageGroupName"]
    version = int(package["ModelPackageVersion"])
    target = settings.state_path / "serving" / "models" / group / str(version)
    fetch_model(s3, model_data_url(package), target)
    return ModelSpec(version, package["ModelPackageArn"], str(target), settings.endpoint_image_uri)


def capture_config(settings: Settings, enabled: bool | None = None) -> st.DataCapture:
    return st.DataCapture(
        enabled=settings.data_capture if enabled is None else enabled,
        sampling_percentage=settings.capture_sampling_percentage,
        destination=f"s3://{settings.bucket}/{CAPTURE_PREFIX}",
    )


def sockets_dir(settings: Settings) -> Path:
    """The instances' socket folders (short: a socket's path is limited to ~100 bytes)."""
    return settings.state_path / "sock"


def local_endpoints(settings: Settings, docker_client: Any, say: Say) -> LocalEndpoints:
    store = st.EndpointStore(settings.state_path)
    backend = DockerInstances(docker_client, sockets_dir(settings))
    return LocalEndpoints(store, backend, DaemonRouter(settings), say)


def deploy(
    settings: Settings,
    *,
    registry: Any,
    s3: Any,
    s3_url: str,
    docker_client: Any,
    say: Say,
    version: int | None = None,
    endpoint: str | None = None,
    instance_count: int | None = None,
    policy: DeploymentPolicy | None = None,
) -> st.Endpoint:
    """Deploy a registered version locally (create, or blue/green update)."""
    if not 0 <= settings.capture_sampling_percentage <= 100:
        raise LocalMlopsError(
            f"capture_sampling_percentage {settings.capture_sampling_percentage} is out of range",
            "use 0 to 100",
        )
    package = resolve_package(registry, settings.model_package_group, version)
    spec = model_spec(settings, package, s3)
    daemon.start_router(settings, s3_url)
    return local_endpoints(settings, docker_client, say).deploy(
        endpoint or settings.endpoint_name,
        spec,
        policy or DeploymentPolicy.from_settings(settings),
        capture_config(settings),
        instance_count,
        create_count=settings.endpoint_instance_count,
    )


def up(settings: Settings, s3_url: str, docker_client: Any, say: Say) -> list[str]:
    """Bring the router and every endpoint back (after ``down`` or a reboot)."""
    store = st.EndpointStore(settings.state_path)
    if not store.names():
        return []
    daemon.start_router(settings, s3_url)
    return local_endpoints(settings, docker_client, say).up()


def down(settings: Settings, docker_client: Any) -> int:
    """Stop the router (flushing capture) and the endpoints' containers; documents stay."""
    daemon.stop_router(settings)
    store = st.EndpointStore(settings.state_path)
    backend = DockerInstances(docker_client, sockets_dir(settings))
    stopped = 0
    for endpoint in store.list():
        backend.halt(endpoint.instances())
        stopped += len(endpoint.instances())
    return stopped


def status(settings: Settings) -> dict[str, Any]:
    """The router and the endpoints, for ``local-mlops status``."""
    info = daemon.router_info(settings)
    store = st.EndpointStore(settings.state_path)
    return {
        "router": {
            "state": "running" if info and info.running else "stopped",
            "address": runtime_url(settings),
            "pid": info.pid if info and info.running else None,
        },
        "endpoints": [endpoint_view(e, settings) for e in store.list()],
    }


def router_log(settings: Settings) -> Path:
    return settings.state_path / "serving" / "logs" / "router.log"
