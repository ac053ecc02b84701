"""Endpoint instances as detached Docker containers (the docker SDK), and model artifacts.

Each instance is ``docker run -d IMAGE serve`` with the model mounted read-only at
``/opt/ml/model``, published on ``127.0.0.1:<port>`` only, labelled with the project, endpoint,
fleet and version, and restarted by Docker on failure and after a reboot of the engine
(``unless-stopped``), so it outlives the CLI. Ports are chosen here and kept in the endpoint's
document, so a restarted container answers where the router expects it.

The router reaches an instance through a Unix socket in a folder of the state dir mounted into
the container (one folder per instance, so a socket can only be that instance's), instead of
the published port: Docker relays a port published on 127.0.0.1 through its ``docker-proxy``
process, which on a 2-core machine costs the model server CPU on every request. The published
port stays for ``/ping``, the commands, and a client that calls the container directly; where
the socket cannot be used (a path over the kernel's limit, or a Docker that does not pass
sockets through mounts) the router uses the port.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from local_mlops.errors import LocalMlopsError
from local_mlops.pipeline.contract import UNIX_SOCKET_ENV
from local_mlops.serving.state import Fleet, Instance

# Loopback traffic never goes through a proxy the environment may name.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

PROJECT_LABEL = "com.local-mlops.project"
ENDPOINT_LABEL = "com.local-mlops.endpoint"
FLEET_LABEL = "com.local-mlops.fleet"
VERSION_LABEL = "com.local-mlops.model-version"
CONTAINER_PORT = 8080
MODEL_MOUNT = "/opt/ml/model"
SOCKET_MOUNT = "/opt/ml/router"
SOCKET_NAME = "serve.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


class Instances(Protocol):
    """What the deployment controller needs from a fleet backend (Docker, or a test double)."""

    def start(self, endpoint: str, fleet: Fleet, count: int) -> list[Instance]: ...

    def ensure(self, endpoint: str, fleet: Fleet) -> None: ...

    def stop(self, instances: list[Instance]) -> None: ...

    def health(self, instance: Instance) -> str | None: ...

    def logs(self, instance: Instance, lines: int = 20) -> str: ...


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(port: int, timeout: float = 2.0) -> str | None:
    """None when ``GET /ping`` answers 200, else what went wrong."""
    try:
        with _DIRECT.open(f"http://127.0.0.1:{port}/ping", timeout=timeout) as reply:
            return None if reply.status == 200 else f"/ping answered {reply.status}"
    except urllib.error.HTTPError as exc:
        return f"/ping answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"/ping failed ({getattr(exc, 'reason', exc)})"


def socket_path(sockets: Path | None, name: str) -> str:
    """Where instance ``name``'s socket is on the host ("" when none: no folder, or too long)."""
    if sockets is None:
        return ""
    folder = hashlib.sha256(name.encode()).hexdigest()[:12]  # short: sun_path is small
    path = str(sockets.resolve() / folder / SOCKET_NAME)
    return path if len(path.encode()) <= MAX_SOCKET_PATH else ""


class DockerInstances:
    """Instances as containers of the endpoint's image.

    ``sockets``: the folder that holds each instance's socket folder (None: the router uses the
    published ports).
    """

    def __init__(self, client: Any, sockets: Path | None = None) -> None:
        self.client = client
        self.sockets = sockets

    def _container(self, name: str) -> Any:
        from docker.errors import NotFound

        try:
            return self.client.containers.get(name)
        except NotFound:
            return None

    def _run(self, endpoint: str, fleet: Fleet, instance: Instance) -> None:
        from docker.errors import APIError, ImageNotFound

        environment = {"SAGEMAKER_BIND_TO_PORT": str(CONTAINER_PORT)}
        volumes = {fleet.model_dir: {"bind": MODEL_MOUNT, "mode": "ro"}}
        if instance.socket:
            folder = Path(instance.socket).parent
            folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # only this user enters
            folder.mkdir(exist_ok=True)
            folder.chmod(0o777)  # the server runs as the image's own user (10001)
            volumes[str(folder)] = {"bind": SOCKET_MOUNT, "mode": "rw"}
            environment[UNIX_SOCKET_ENV] = f"{SOCKET_MOUNT}/{SOCKET_NAME}"
        try:
            self.client.containers.run(
                fleet.image,
                "serve",
                name=instance.name,
                detach=True,
                labels={
                    PROJECT_LABEL: "local-mlops",
                    ENDPOINT_LABEL: endpoint,
                    FLEET_LABEL: fleet.id,
                    VERSION_LABEL: str(fleet.version),
                },
                environment=environment,
                ports={f"{CONTAINER_PORT}/tcp": ("127.0.0.1", instance.port)},
                volumes=volumes,
                restart_policy={"Name": "unless-stopped"},
            )
        except ImageNotFound as exc:
            raise LocalMlopsError(
                f"the endpoint image {fleet.image} is not on this machine",
                "build it with `local-mlops build` (or set endpoint_image)",
            ) from exc
        except APIError as exc:
            raise LocalMlopsError(
                f"cannot start container {instance.name}: {exc.explanation or exc}",
                "see `docker ps -a`; a port may be taken (deploy again picks new ones)",
            ) from exc

    def start(self, endpoint: str, fleet: Fleet, count: int) -> list[Instance]:
        instances = []
        for number in range(count):
            name = f"local-mlops-{endpoint}-{fleet.id}-{number}"
            instance = Instance(name, free_port(), socket_path(self.sockets, name))
            old = self._container(instance.name)
            if old is not None:
                old.remove(force=True)
            self._run(endpoint, fleet, instance)
            instances.append(instance)
        return instances

    def ensure(self, endpoint: str, fleet: Fleet) -> None:
        """Start the fleet's containers that are missing or stopped (``up``)."""
        for instance in fleet.instances:
            container = self._container(instance.name)
            if container is None:
                self._run(endpoint, fleet, instance)
            elif container.status != "running":
                container.start()

    def stop(self, instances: list[Instance]) -> None:
        for instance in instances:
            container = self._container(instance.name)
            if container is not None:
                container.stop(timeout=10)
                container.remove(force=True)
            if instance.socket:
                shutil.rmtree(Path(instance.socket).parent, ignore_errors=True)

    def halt(self, instances: list[Instance]) -> None:
        """Stop but keep the containers (``down``); ``ensure`` starts them again."""
        for instance in instances:
            container = self._container(instance.name)
            if container is not None and container.status == "running":
                container.stop(timeout=10)

    def health(self, instance: Instance) -> str | None:
        container = self._container(instance.name)
        if container is None:
            return f"container {instance.name} is gone"
        state = container.attrs.get("State", {})
        # Docker restarts a crashed instance: one that ever restarted has a broken model.
        if state.get("Restarting") or container.attrs.get("RestartCount", 0) > 0:
            return f"container {instance.name} keeps exiting (code {state.get('ExitCode')})"
        if container.status == "exited":
            return f"container {instance.name} exited with code {state.get('ExitCode')}"
        return ping(instance.port)

    def logs(self, instance: Instance, lines: int = 20) -> str:
        container = self._container(instance.name)
        if container is None:
            return ""
        return str(container.logs(tail=lines).decode("utf-8", "replace"))

    def project_containers(self) -> list[Any]:
        return list(self.client.containers.list(all=True, filters={"label": PROJECT_LABEL}))


def wait_healthy(backend: Instances, instances: list[Instance], timeout: float) -> str | None:
    """Poll ``/ping`` on every instance until all answer; the reason when one never does."""
    deadline = time.monotonic() + timeout
    waiting = list(instances)
    problem: str | None = None
    while waiting:
        for instance in list(waiting):
            problem = backend.health(instance)
            if problem is None:
                waiting.remove(instance)
            elif "exit" in problem or "gone" in problem:
                tail = backend.logs(instance).strip().splitlines()[-3:]
                return f"{problem}: {' | '.join(tail)}" if tail else problem
        if waiting and time.monotonic() > deadline:
            return f"{waiting[0].name} did not answer /ping within {timeout:.0f} s ({problem})"
        if waiting:
            time.sleep(0.2)
    return None


def _one_request() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=1 << 40)


def fetch_model(s3: Any, model_data_url: str, target: Path) -> Path:
    """Download and safely extract ``model.tar.gz`` into ``target`` (once per version)."""
    done = target / ".extracted"
    if done.exists():
        return target
    bucket, _, key = model_data_url.removeprefix("s3://").partition("/")
    if not model_data_url.startswith("s3://") or not key:
        raise LocalMlopsError(f"model data {model_data_url!r} is not an s3:// URI")
    target.mkdir(parents=True, exist_ok=True)
    archive = target.parent / f".{target.name}.tar.gz"
    try:
        # One GET: the local emulator serves a whole object 2-3x faster than 8 MB ranges in
        # parallel (89.5 MB: 0.19-0.22 s against 0.51-0.58 s).
        s3.download_file(bucket, key, str(archive), Config=_one_request())
    except Exception as exc:
        raise LocalMlopsError(
            f"cannot download the model {model_data_url}: {exc}",
            "is the S3 emulator running (`local-mlops up`) with the registry's bucket?",
        ) from exc
    try:
        # One pass over the stream (listing the members first would decompress it twice).
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                unsafe = member.name.startswith("/") or ".." in parts
                if unsafe or not (member.isfile() or member.isdir()):
                    raise LocalMlopsError(f"{model_data_url} holds an unsafe entry {member.name!r}")
                tar.extract(member, target)
    except tarfile.TarError as exc:
        raise LocalMlopsError(f"{model_data_url} is not a readable tar.gz ({exc})") from exc
    finally:
        archive.unlink(missing_ok=True)
    target.chmod(0o755)
    done.write_text(model_data_url)
    return target
