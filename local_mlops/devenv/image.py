"""Building the images (runtime, serving, emulator) online, air-gapped or behind a TLS proxy.

Online: the public base image is pulled and pip reads the package indexes. Air-gapped (no
registry answers, as on CI): a Debian base is made with debootstrap + ``docker import``
(``scripts/make-base-image.sh``), the Python wheels are gathered on the host into a wheelhouse
and served to the build over HTTP on the Docker bridge address, so the build contacts no index
and the multi-gigabyte wheels never enter the build context.
"""

from __future__ import annotations

import hashlib
import http.server
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from local_mlops.config import Settings
from local_mlops.devenv import dockerhost
from local_mlops.errors import LocalMlopsError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINERS = REPO_ROOT / "containers"
OFFLINE_BASE = "local-mlops/debian:bookworm"
EMULATOR_IMAGE = "local-mlops-s3"
WHEELHOUSE_PORT = 18573  # fixed, so the build argument (and so the layer cache) is stable

Say = Callable[[str], None]


@dataclass(frozen=True)
class ImageSpec:
    tag: str
    context: Path
    dockerfile: str = "Dockerfile"
    # The pins people edit (may include others with ``-r``) and the lock built from them
    # (exact versions with hashes; scripts/lock.sh refreshes it; "": installed from the pins).
    requirements_file: str = "requirements.txt"
    lock_file: str = "requirements.lock"

    @property
    def requirements(self) -> Path:
        """The file the image installs from: its lock file, else its requirements file."""
        return self.context / (self.lock_file or self.requirements_file)

    def requirement_files(self) -> list[Path]:
        """The requirements file and every file it includes with ``-r`` (one level is enough)."""
        source = self.context / self.requirements_file
        files = [source]
        for line in source.read_text().splitlines():
            if line.strip().startswith(("-r ", "--requirement ")):
                files.append(source.parent / line.split(maxsplit=1)[1].strip())
        return files


@dataclass(frozen=True)
class BuildResult:
    tag: str
    size_bytes: int
    seconds: float
    mode: str  # "online" | "offline"


def runtime_spec(settings: Settings) -> ImageSpec:
    """The PyTorch image for processing and training (and hosting artifacts without ONNX)."""
    return ImageSpec(settings.image_uri, CONTAINERS)


def serving_spec(settings: Settings) -> ImageSpec:
    """The lean ONNX Runtime image for endpoints and batch transform (no torch)."""
    return ImageSpec(
        settings.serving_image_uri,
        CONTAINERS,
        dockerfile="Dockerfile.serving",
        requirements_file="requirements-serving.txt",
        lock_file="requirements-serving.lock",
    )


def emulator_spec() -> ImageSpec:
    """The S3 emulator image, tagged by its sources: a changed emulator is a new image."""
    context = CONTAINERS / "emulator"
    digest = hashlib.sha256()
    for path in sorted(context.rglob("*")):
        if path.is_file() and ".build" not in path.parts and "__pycache__" not in path.parts:
            digest.update(path.relative_to(context).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return ImageSpec(f"{EMULATOR_IMAGE}:moto-5.2.5-{digest.hexdigest()[:12]}", context)


def _pull(image: str) -> bool:
    done = subprocess.run(["docker", "pull", "-q", image], capture_output=True, check=False)
    return done.returncode == 0


def resolve_base(settings: Settings, say: Say) -> tuple[str, str]:
    """(base image, mode): the configured base when present or pullable, else a local Debian."""
    if dockerhost.image_exists(settings.base_image) or _pull(settings.base_image):
        return settings.base_image, "online"
    say(f"No registry answers for {settings.base_image}: building offline from {OFFLINE_BASE}.")
    if not dockerhost.image_exists(OFFLINE_BASE):
        say("Making the Debian base image with debootstrap (about a minute, once) ...")
        script = REPO_ROOT / "scripts" / "make-base-image.sh"
        done = subprocess.run([str(script), OFFLINE_BASE], capture_output=True, text=True)
        if done.returncode != 0:
            raise LocalMlopsError(
                f"could not make the base image: {done.stderr.strip()[-400:]}",
                "run scripts/make-base-image.sh as root (needs debootstrap and a Debian mirror)",
            )
    return OFFLINE_BASE, "offline"


def wheelhouse_dir(settings: Settings) -> Path:
    return settings.state_path / "wheelhouse"


def prepare_wheelhouse(settings: Settings, spec: ImageSpec, say: Say) -> Path:
    """Download the image's wheels on the host (pip reads the host's indexes, proxy and CA)."""
    house = wheelhouse_dir(settings)
    house.mkdir(parents=True, exist_ok=True)
    files = dict.fromkeys([*spec.requirement_files(), spec.requirements])
    content = b"".join(path.read_bytes() for path in files)
    digest = hashlib.sha256(content).hexdigest()[:16]
    stamp = house / f".ready-{digest}"
    if stamp.exists():
        return house
    say(f"Gathering wheels for {spec.requirements.relative_to(REPO_ROOT)} into {house} ...")
    argv = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:"]
    argv += ["-r", str(spec.requirements), "-d", str(house)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise LocalMlopsError(
            f"pip could not gather the wheels: {done.stderr.strip()[-600:]}",
            "check that pip reaches a package index (or fill the wheelhouse by hand)",
        )
    stamp.touch()
    return house


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


@contextmanager
def serve_wheelhouse(house: Path) -> Iterator[str]:
    """Serve the wheelhouse to build containers on the bridge address for the build's duration."""
    host = dockerhost.bridge_address()
    handler = partial(_QuietHandler, directory=str(house))
    try:
        server = http.server.ThreadingHTTPServer((host, WHEELHOUSE_PORT), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _write_ca_bundle(settings: Settings, context: Path) -> None:
    """Put the host's CA bundle (or an empty file) where the Dockerfile copies it from."""
    target = context / ".build" / "ca-bundle.crt"
    target.parent.mkdir(exist_ok=True)
    source = Path(settings.ca_bundle) if settings.ca_bundle else None
    if source and source.is_file():
        shutil.copyfile(source, target)
    else:
        target.write_text("")


def build(
    settings: Settings,
    spec: ImageSpec,
    say: Say,
    on_line: Callable[[str, int, int], None] | None = None,
) -> BuildResult:
    """Build an image with the docker engine, reusing its layer cache."""
    started = time.monotonic()
    base, mode = resolve_base(settings, say)
    _write_ca_bundle(settings, spec.context)
    args = {"BASE_IMAGE": base}
    if mode == "online":
        args |= {
            "PIP_INDEX_URL": settings.pip_index_url,
            "TORCH_INDEX_URL": settings.torch_index_url,
        }
        _run_build(settings, spec, args, on_line)
    else:
        house = prepare_wheelhouse(settings, spec, say)
        with serve_wheelhouse(house) as url:
            _run_build(settings, spec, args | {"WHEELHOUSE_URL": url}, on_line)
    seconds = time.monotonic() - started
    return BuildResult(spec.tag, dockerhost.image_size(spec.tag), seconds, mode)


def _run_build(
    settings: Settings,
    spec: ImageSpec,
    buildargs: dict[str, str],
    on_line: Callable[[str, int, int], None] | None,
) -> None:
    log_path = settings.state_path / "logs" / f"build-{spec.tag.replace('/', '_')}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    api = dockerhost.docker_client().api
    step, total = 0, 0
    tail: list[str] = []
    with log_path.open("w") as log:
        stream = api.build(
            path=str(spec.context),
            dockerfile=spec.dockerfile,
            tag=spec.tag,
            buildargs=buildargs,
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                log.write(chunk["error"] + "\n")
                raise LocalMlopsError(
                    f"the image build failed: {chunk['error'].strip()}\n" + "\n".join(tail[-15:]),
                    f"see the full log in {log_path}",
                )
            line = str(chunk.get("stream", "")).rstrip()
            if not line:
                continue
            log.write(line + "\n")
            tail = (tail + [line])[-40:]
            if line.startswith("Step ") and "/" in line.split()[1]:
                numbers = line.split()[1].split("/")
                step, total = int(numbers[0]), int(numbers[1])
            if on_line:
                on_line(line, step, total)


# --- Pushing the runtime image to a registry (ECR for the cloud target; see cloud.py) ---

PushProgress = Callable[[str, str, int, int], None]  # layer id, status, bytes done, bytes total


@dataclass(frozen=True)
class PushResult:
    uri: str
    digest: str
    seconds: float
    skipped: bool  # the registry already had this image under the tag


def repo_digests(tag: str) -> list[str]:
    """The ``repository@sha256:...`` digests the engine knows for a local image (set by pushes)."""
    from docker.errors import ImageNotFound

    try:
        attrs = dockerhost.docker_client().images.get(tag).attrs
    except ImageNotFound as exc:
        raise LocalMlopsError(f"the runtime image {tag} is not built", "local-mlops build") from exc
    return list(attrs.get("RepoDigests") or [])


def login(registry: str, username: str, password: str) -> None:
    """``docker login``: the engine checks the credentials against the registry right away."""
    from docker.errors import APIError

    try:
        dockerhost.docker_client().login(
            username=username, password=password, registry=registry, reauth=True
        )
    except APIError as exc:
        raise LocalMlopsError(
            f"docker login to {registry} failed: {exc.explanation or exc}",
            f"check that the Docker engine reaches {registry} (network, proxy, DNS) "
            "and that the credentials may push there",
        ) from exc


def push(
    local_tag: str,
    remote_uri: str,
    auth: dict[str, str] | None = None,
    on_progress: PushProgress | None = None,
) -> str:
    """Tag the local image as ``remote_uri`` and push it; returns the pushed manifest's digest."""
    from docker.errors import APIError, ImageNotFound

    client = dockerhost.docker_client()
    repository, _, tag = remote_uri.rpartition(":")
    try:
        if local_tag != remote_uri:
            client.images.get(local_tag).tag(repository, tag=tag)
        stream = client.api.push(repository, tag=tag, auth_config=auth, stream=True, decode=True)
        digest = ""
        for chunk in stream:
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise LocalMlopsError(
                    f"pushing {remote_uri} failed: {str(detail).strip()}",
                    f"check that the Docker engine reaches {repository.split('/', 1)[0]} "
                    f"and may push there; `docker push {remote_uri}` shows the same error",
                )
            digest = str(chunk.get("aux", {}).get("Digest", "")) or digest
            if on_progress and chunk.get("id"):
                detail = chunk.get("progressDetail") or {}
                on_progress(
                    str(chunk["id"]),
                    str(chunk.get("status", "")),
                    int(detail.get("current") or 0),
                    int(detail.get("total") or 0),
                )
    except ImageNotFound as exc:
        raise LocalMlopsError(
            f"the runtime image {local_tag} is not built", "local-mlops build"
        ) from exc
    except APIError as exc:
        raise LocalMlopsError(
            f"pushing {remote_uri} failed: {exc.explanation or exc}",
            "check that the Docker engine runs and reaches the registry",
        ) from exc
    if not digest:
        raise LocalMlopsError(
            f"pushing {remote_uri} ended without a digest from the registry",
            f"retry; `docker push {remote_uri}` shows what the registry answers",
        )
    return digest
