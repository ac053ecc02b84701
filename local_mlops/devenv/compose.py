"""The docker-compose dev environment: ``up``, ``down`` and ``status``.

``up`` builds the emulator image when missing and starts it on the Docker bridge address with the
state dir's ``s3-data`` folder mounted: the emulator persists every write there and loads it back
when it starts, so the bucket survives ``down``/``up``, ``docker kill``, a crash or a reboot.
``up`` says what the emulator restored; ``down`` removes the containers and keeps the data.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from local_mlops import s3
from local_mlops.config import Settings, process_environ
from local_mlops.devenv import dockerhost, emulator, image
from local_mlops.errors import LocalMlopsError

COMPOSE_FILE = image.REPO_ROOT / "docker-compose.yml"
PROJECT = "local-mlops"
S3_CONTAINER = "local-mlops-s3"
DEFAULT_PORT = 4566


def project_name(settings: Settings) -> str:
    """``local-mlops``; on another emulator port its own project, so two environments coexist."""
    if settings.emulator_port == DEFAULT_PORT:
        return PROJECT
    return f"{PROJECT}-{settings.emulator_port}"


def s3_container(settings: Settings) -> str:
    return S3_CONTAINER.replace(PROJECT, project_name(settings), 1)


@dataclass(frozen=True)
class Service:
    name: str
    state: str
    address: str


def _compose_argv(settings: Settings) -> list[str]:
    info = dockerhost.ensure_sdk_compose(settings.state_path / "bin")
    prefix = ["docker", "compose"] if info.flavour == "plugin" else ["docker-compose"]
    return [*prefix, "-f", str(COMPOSE_FILE), "-p", project_name(settings)]


def _compose(settings: Settings, *args: str) -> str:
    env = process_environ() | {
        "LOCAL_MLOPS_S3_BIND": dockerhost.bridge_address(),
        "LOCAL_MLOPS_EMULATOR_PORT": str(settings.emulator_port),
        "LOCAL_MLOPS_EMULATOR_IMAGE": image.emulator_spec().tag,
        "LOCAL_MLOPS_S3_DATA": str(emulator.data_dir(settings)),
        "LOCAL_MLOPS_S3_CONTAINER": s3_container(settings),
    }
    done = subprocess.run(
        [*_compose_argv(settings), *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise LocalMlopsError(
            f"docker compose {' '.join(args)} failed: {done.stderr.strip()[-500:]}",
            f"check {COMPOSE_FILE} and `docker ps -a`",
        )
    return done.stdout


def up(settings: Settings, say: image.Say) -> str:
    """Start the emulator (it restores its data dir), create the bucket; returns the S3 URL."""
    dockerhost.docker_client()
    tag = image.emulator_spec().tag
    if not dockerhost.image_exists(tag):
        say(f"Building the S3 emulator image {tag} (once) ...")
        image.build(settings, image.emulator_spec(), say)
    url = emulator.devenv_url(settings)
    assert url is not None
    already = emulator.is_reachable(url)
    embedded = emulator.running_embedded(settings)
    if embedded and not already:
        embedded = emulator.wait_until_unused(settings)
    if embedded and not already:
        raise LocalMlopsError(
            f"a command's embedded S3 emulator at {embedded} serves {emulator.data_dir(settings)}",
            "let that command finish (the emulator stops with it), then run `local-mlops up`",
        )
    emulator.data_dir(settings).mkdir(parents=True, exist_ok=True)
    _compose(settings, "up", "-d", "s3")
    # The emulator loads its data dir before it opens the port: allow for a large one.
    emulator.wait_until_reachable(url, 300, "the S3 emulator")
    _wait_for_s3(settings, url)
    s3.ensure_bucket(settings, url)
    imported = emulator.import_legacy_snapshot(settings, url)
    if imported:
        say(f"Imported {imported} objects from the snapshot of an earlier version.")
    if not already:
        report = emulator.restore_report(url)
        if report.get("objects"):
            summary = emulator.bucket_summary(settings, url)
            say(
                f"The S3 emulator {emulator.describe_restore(report, summary)} "
                f"from {emulator.data_dir(settings)}."
            )
    return url


def _wait_for_s3(settings: Settings, url: str, timeout: float = 30) -> None:
    """The port opens before moto answers requests: poll a cheap S3 call."""
    import time

    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + timeout
    client = s3.s3_client(settings, url)
    while True:
        try:
            client.list_buckets()
            return
        except (BotoCoreError, ClientError):
            if time.monotonic() > deadline:
                raise LocalMlopsError(
                    f"the S3 emulator at {url} does not answer S3 calls"
                ) from None
            time.sleep(0.2)


def down(settings: Settings, say: image.Say) -> None:
    """Stop and remove the dev environment's containers; the bucket's data stays on disk."""
    _compose(settings, "down", "--remove-orphans")
    say(f"The bucket's data stays in {emulator.data_dir(settings)} for the next `local-mlops up`.")


def status(settings: Settings) -> list[Service]:
    """The dev environment's containers with their state and address."""
    if not dockerhost.docker_available():
        return []
    client = dockerhost.docker_client()
    services = []
    for container in client.containers.list(all=True, filters={"label": "com.local-mlops.role"}):
        role = container.labels.get("com.local-mlops.role", container.name)
        address = ""
        ports = container.attrs.get("NetworkSettings", {}).get("Ports") or {}
        for bindings in ports.values():
            for binding in bindings or []:
                address = f"http://{binding['HostIp']}:{binding['HostPort']}"
        services.append(Service(role, container.status, address))
    return services
