"""The docker-compose dev environment: ``up``, ``down`` and ``status``.

``up`` builds the emulator image when missing, starts it on the Docker bridge address, creates
the bucket and restores the last snapshot; ``down`` snapshots the bucket into the state dir and
removes the containers. So what was in the bucket survives ``down``/``up``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from local_mlops import s3
from local_mlops.config import Settings, process_environ
from local_mlops.devenv import dockerhost, emulator, image
from local_mlops.errors import LocalMlopsError

COMPOSE_FILE = image.REPO_ROOT / "docker-compose.yml"
PROJECT = "local-mlops"
S3_CONTAINER = "local-mlops-s3"


@dataclass(frozen=True)
class Service:
    name: str
    state: str
    address: str


def _compose_argv(settings: Settings) -> list[str]:
    info = dockerhost.ensure_sdk_compose(settings.state_path / "bin")
    prefix = ["docker", "compose"] if info.flavour == "plugin" else ["docker-compose"]
    return [*prefix, "-f", str(COMPOSE_FILE), "-p", PROJECT]


def _compose(settings: Settings, *args: str) -> str:
    env = process_environ() | {
        "LOCAL_MLOPS_S3_BIND": dockerhost.bridge_address(),
        "LOCAL_MLOPS_EMULATOR_PORT": str(settings.emulator_port),
        "LOCAL_MLOPS_EMULATOR_IMAGE": image.EMULATOR_IMAGE,
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
    """Start the emulator, create the bucket, restore the snapshot; returns the S3 URL."""
    dockerhost.docker_client()
    if not dockerhost.image_exists(image.EMULATOR_IMAGE):
        say(f"Building the S3 emulator image {image.EMULATOR_IMAGE} (once) ...")
        image.build(settings, image.emulator_spec(), say)
    _compose(settings, "up", "-d", "s3")
    url = emulator.devenv_url(settings)
    assert url is not None
    emulator.wait_until_reachable(url, 30, "the S3 emulator")
    _wait_for_s3(settings, url)
    s3.ensure_bucket(settings, url)
    restored = emulator.restore_snapshot(settings, url)
    if restored:
        say(f"Restored {restored} objects into s3://{settings.bucket} from the snapshot.")
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
    """Snapshot the bucket, then stop and remove the dev environment's containers."""
    url = emulator.devenv_url(settings)
    if url and emulator.is_reachable(url):
        saved = emulator.save_snapshot(settings, url)
        say(f"Saved {saved} changed objects of s3://{settings.bucket} to {_snapshot(settings)}.")
    _compose(settings, "down", "--remove-orphans")


def _snapshot(settings: Settings) -> Path:
    return emulator.snapshot_dir(settings)


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
