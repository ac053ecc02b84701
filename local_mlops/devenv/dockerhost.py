"""The Docker engine and Docker Compose as SageMaker local mode needs them.

SDK v2 accepts ``docker compose`` only when ``docker compose version`` prints a string containing
``v2``, else a ``docker-compose`` binary on PATH. Compose v5 (recent Docker Desktop) and v2 builds
that print a bare ``2.x`` are wrongly rejected, so we put a ``docker-compose`` shim that calls the
plugin in a folder we manage and prepend it to PATH for our own process.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from local_mlops.errors import LocalMlopsError

SHIM_NAME = "docker-compose"
DETECTED_FILE = "compose-detected.json"
# Where the docker CLI finds its compose plugin (`local-mlops doctor` asks afresh, wherever).
PLUGIN_DIRS = (
    "~/.docker/cli-plugins",
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)
SHIM_TEXT = '#!/bin/sh\n# Managed by local-mlops: lets SageMaker SDK v2 use the compose plugin.\nexec docker compose "$@"\n'
DOCKER_FIX = "start the Docker engine (`sudo dockerd &` or `scripts/install-docker.sh`)"


@dataclass(frozen=True)
class ComposeInfo:
    """Which compose the SDK will run, and how."""

    flavour: str  # "plugin" | "standalone" | "missing"
    version: str
    sdk_accepts_plugin: bool
    needs_shim: bool

    @property
    def usable(self) -> bool:
        return self.flavour != "missing"


def parse_compose_version(text: str) -> str | None:
    """The version number in ``docker compose version`` / ``docker-compose version`` output."""
    match = re.search(r"v?(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else None


def sdk_accepts_plugin_output(text: str) -> bool:
    """Mirror of the SDK's own test (``sagemaker/local/image.py``): it wants ``v2`` in the output."""
    return "v2" in text


def _run(argv: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return done.returncode, (done.stdout + done.stderr).strip()


def detect_compose(shim_dir: Path | None = None) -> ComposeInfo:
    """What compose is installed, and whether SDK v2 would accept it without help."""
    if shutil.which("docker"):
        code, out = _run(["docker", "compose", "version"])
        if code == 0 and parse_compose_version(out):
            accepts = sdk_accepts_plugin_output(out)
            standalone = _standalone_binary(shim_dir)
            return ComposeInfo(
                "plugin", parse_compose_version(out) or "", accepts, not accepts and not standalone
            )
    standalone = _standalone_binary(shim_dir)
    if standalone:
        code, out = _run([standalone, "version", "--short"])
        return ComposeInfo("standalone", parse_compose_version(out) or out, False, False)
    return ComposeInfo("missing", "", False, False)


def _standalone_binary(shim_dir: Path | None) -> str | None:
    """A real ``docker-compose`` on PATH (our own shim does not count)."""
    for folder in os.get_exec_path():
        candidate = Path(folder) / SHIM_NAME
        if shim_dir and candidate.parent.resolve() == shim_dir.resolve():
            continue
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _installed(shim_dir: Path) -> list[list[Any]]:
    """What ``detect_compose``'s answer depends on: the docker CLI, its compose plugins and the
    first real ``docker-compose`` on PATH, each as (path, size, mtime)."""
    paths = [
        shutil.which("docker"),
        _standalone_binary(shim_dir),
        *(str(Path(d).expanduser() / SHIM_NAME) for d in PLUGIN_DIRS),
    ]
    found = []
    for path in paths:
        try:
            stat = os.stat(path) if path else None
        except OSError:
            stat = None
        found.append([path, stat.st_size if stat else None, stat.st_mtime_ns if stat else None])
    return found


def detect_compose_once(shim_dir: Path) -> ComposeInfo:
    """``detect_compose``, remembered in ``shim_dir`` until the docker CLI, a compose plugin or the
    ``docker-compose`` binary changes: asking compose v1 its version is a Python start (~0.4 s)
    that every command opening the local target would pay again. ``doctor`` does not use it."""
    remembered = shim_dir / DETECTED_FILE
    installed = _installed(shim_dir)
    try:
        saved = json.loads(remembered.read_text())
        if saved["installed"] == installed:
            return ComposeInfo(**saved["info"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    info = detect_compose(shim_dir)
    if info.usable:  # a missing compose is looked for again next time
        try:
            shim_dir.mkdir(parents=True, exist_ok=True)
            remembered.write_text(json.dumps({"installed": installed, "info": vars(info)}))
        except OSError:
            pass  # only a cache
    return info


def ensure_sdk_compose(shim_dir: Path) -> ComposeInfo:
    """Make compose usable by the SDK for this process, installing the shim when needed."""
    info = detect_compose_once(shim_dir)
    if not info.usable:
        raise LocalMlopsError(
            "Docker Compose is not installed (SageMaker local mode looks for it before every job)",
            "install it: `apt-get install docker-compose` or the Docker compose plugin",
        )
    if info.needs_shim:
        shim_dir.mkdir(parents=True, exist_ok=True)
        shim = shim_dir / SHIM_NAME
        if not shim.exists() or shim.read_text() != SHIM_TEXT:
            shim.write_text(SHIM_TEXT)
            shim.chmod(0o755)
        path = os.get_exec_path()
        if str(shim_dir) not in path:
            os.environ["PATH"] = os.pathsep.join([str(shim_dir), *path])
    return info


@lru_cache(maxsize=1)
def docker_client() -> Any:
    """A docker SDK client, or a clear error naming the fix."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except DockerException as exc:
        raise LocalMlopsError(f"the Docker engine is not reachable ({exc})", DOCKER_FIX) from exc
    return client


def docker_available() -> bool:
    try:
        docker_client()
    except LocalMlopsError:
        docker_client.cache_clear()
        return False
    return True


def bridge_address() -> str:
    """The host's address on Docker's default bridge (``docker0``), e.g. ``172.17.0.1``.

    Job containers on the ``sagemaker-local`` network and the host both reach a server bound to
    it, so one S3 URL works for the CLI and for the jobs.
    """
    network = docker_client().networks.get("bridge")
    for config in network.attrs.get("IPAM", {}).get("Config") or []:
        if config.get("Gateway"):
            return str(config["Gateway"])
        if config.get("Subnet"):
            subnet = ipaddress.ip_network(config["Subnet"], strict=False)
            return str(next(subnet.hosts()))
    raise LocalMlopsError(
        "cannot find the address of Docker's bridge network",
        "check `docker network inspect bridge`",
    )


def image_exists(name: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        docker_client().images.get(name)
    except ImageNotFound:
        return False
    return True


def image_id(name: str) -> str | None:
    """The engine's ID of an image (``sha256:...``): what a tag points to now; None if absent."""
    from docker.errors import DockerException

    try:
        return str(docker_client().images.get(name).id)
    except (DockerException, LocalMlopsError):
        return None


def image_size(name: str) -> int:
    return int(docker_client().images.get(name).attrs.get("Size", 0))
