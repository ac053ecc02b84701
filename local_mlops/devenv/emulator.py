"""The S3 side of the local target: which endpoint to use, the embedded moto server, snapshots.

Resolution, first match wins: an explicitly configured endpoint; the dev environment's emulator
(``local-mlops up``) when it answers; otherwise an embedded moto server that lives for one command.
moto keeps no state across restarts, so the bucket is snapshotted to the state dir when an
emulator we manage stops and restored when one starts: datasets, the model registry and run
history survive ``down``/``up`` and the end of a command.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from local_mlops.config import Settings, process_environ
from local_mlops.devenv import dockerhost
from local_mlops.errors import LocalMlopsError
from local_mlops.s3 import ensure_bucket, s3_client, upload_tree
from local_mlops.targets.base import kind_of

SNAPSHOT_INDEX = ".snapshot-index.json"


@dataclass(frozen=True)
class Endpoint:
    url: str
    kind: str  # "configured" | "devenv" | "embedded"


def is_reachable(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at the URL's host and port."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "localhost", port), timeout=timeout):
            return True
    except OSError:
        return False


def devenv_url(settings: Settings) -> str | None:
    """The dev environment emulator's URL, if Docker runs (it listens on the bridge address)."""
    if not dockerhost.docker_available():
        return None
    return f"http://{dockerhost.bridge_address()}:{settings.emulator_port}"


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until_reachable(url: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_reachable(url, timeout=0.5):
            return
        time.sleep(0.1)
    raise LocalMlopsError(f"{what} did not answer at {url} within {timeout:.0f} s")


class MotoServer:
    """A moto server subprocess on ``host`` (a free port unless given), stopped by its pid."""

    def __init__(self, host: str, port: int | None = None, log: Path | None = None) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> str:
        argv = [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]
        sink: Any = subprocess.DEVNULL
        if self.log:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            sink = self.log.open("ab")
        try:
            self._process = subprocess.Popen(
                argv, stdout=sink, stderr=subprocess.STDOUT, env=process_environ()
            )
        finally:
            if self.log:
                sink.close()
        try:
            wait_until_reachable(self.url, timeout, "the S3 emulator (moto)")
        except LocalMlopsError:
            self.stop()
            raise
        return self.url

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._process = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedEmulator:
    """A moto server for the duration of one command, with the bucket and its snapshot."""

    def __init__(self, settings: Settings, host: str | None = None) -> None:
        self.settings = settings
        host = host or (
            dockerhost.bridge_address() if dockerhost.docker_available() else "127.0.0.1"
        )
        self.server = MotoServer(host, log=settings.state_path / "logs" / "embedded-s3.log")
        self.url = self.server.url

    def start(self) -> str:
        self.server.start()
        ensure_bucket(self.settings, self.url)
        restore_snapshot(self.settings, self.url)
        return self.url

    def stop(self, snapshot: bool = False) -> None:
        try:
            if snapshot and self.server.running:
                save_snapshot(self.settings, self.url)
        finally:
            self.server.stop()


@contextlib.contextmanager
def s3_endpoint(settings: Settings, announce: Any = None) -> Iterator[Endpoint]:
    """The S3 endpoint for a command, starting an embedded emulator when nothing else is there."""
    if not kind_of(settings).uses_emulator:
        yield Endpoint(settings.s3_endpoint, "configured")
        return
    if settings.s3_endpoint:
        if not is_reachable(settings.s3_endpoint):
            raise LocalMlopsError(
                f"the S3 endpoint {settings.s3_endpoint} does not answer",
                "start it with `local-mlops up`, or unset s3_endpoint to use an embedded one",
            )
        ensure_bucket(settings, settings.s3_endpoint)
        yield Endpoint(settings.s3_endpoint, "configured")
        return
    url = devenv_url(settings)
    if url and is_reachable(url):
        ensure_bucket(settings, url)
        yield Endpoint(url, "devenv")
        return
    emulator = EmbeddedEmulator(settings)
    url = emulator.start()
    if announce:
        announce(
            f"Started an embedded S3 emulator at {url} for this command "
            "(`local-mlops up` keeps one running)."
        )
    try:
        yield Endpoint(url, "embedded")
    finally:
        emulator.stop(snapshot=True)


def snapshot_dir(settings: Settings) -> Path:
    return settings.state_path / "s3" / settings.bucket


def save_snapshot(settings: Settings, url: str) -> int:
    """Copy new or changed objects of the bucket to the state dir; drop deleted ones."""
    client = s3_client(settings, url)
    root = snapshot_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    index_path = root / SNAPSHOT_INDEX
    old: dict[str, str] = json.loads(index_path.read_text()) if index_path.exists() else {}
    current: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket):
        for obj in page.get("Contents", []):
            current[obj["Key"]] = obj["ETag"]
    changed = [key for key, etag in current.items() if old.get(key) != etag]

    def fetch(key: str) -> None:
        target = root / "objects" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(settings.bucket, key, str(target))

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(fetch, changed))
    for key in set(old) - set(current):
        (root / "objects" / key).unlink(missing_ok=True)
    index_path.write_text(json.dumps(current))
    return len(changed)


def restore_snapshot(settings: Settings, url: str) -> int:
    """Upload the saved objects into a fresh emulator's bucket."""
    root = snapshot_dir(settings) / "objects"
    if not root.is_dir():
        return 0
    client = s3_client(settings, url)
    existing = {
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket)
        for obj in page.get("Contents", [])
    }
    files = [p for p in root.rglob("*") if p.is_file()]
    todo = [p for p in files if p.relative_to(root).as_posix() not in existing]
    upload_tree(client, settings.bucket, todo, root)
    # Uploads change nothing the index tracks except ETags of multipart objects: re-index.
    index: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket):
        for obj in page.get("Contents", []):
            index[obj["Key"]] = obj["ETag"]
    (snapshot_dir(settings) / SNAPSHOT_INDEX).write_text(json.dumps(index))
    return len(todo)
