"""The S3 side of the local target: which endpoint to use, the embedded emulator, the data dir.

Resolution, first match wins: an explicitly configured endpoint; the dev environment's emulator
(``local-mlops up``) when it answers; otherwise an embedded emulator that lives for one command.
Both emulators are moto behind ``durable_s3`` (``containers/emulator/durable_s3``), which writes
every object a request stored or deleted to ``<state dir>/s3-data`` before it answers, and loads
that folder back when it starts: what a finished command or step wrote survives a kill, a crash
or a reboot of the emulator, not only ``down``/``up``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from local_mlops.config import Settings, process_environ
from local_mlops.devenv import dockerhost
from local_mlops.devenv.image import CONTAINERS
from local_mlops.errors import LocalMlopsError
from local_mlops.s3 import ensure_bucket, s3_client, upload_tree
from local_mlops.targets.base import kind_of

DURABLE_S3_PATH = CONTAINERS / "emulator"  # holds the durable_s3 package
USERS_LOCK = ".users"  # shared-locked by every command using the embedded emulator
START_LOCK = ".start"  # one command at a time decides whether to start one
SERVER_FILE = ".server.json"  # the embedded emulator's URL
DATA_LOCK = ".lock"  # held by the one server serving the data dir (durable_s3's LOCK_NAME)
IDLE_EXIT_SECONDS = 5.0  # an unused embedded server exits within ~1 s; wait this long at most
STATUS_PATH = "/_local-mlops/durable"  # durable_s3's report of what it restored
RUNS_PREFIX = "_local-mlops/executions/"
VERSIONS_MARK = "/versions/"
REGISTRY_PREFIX = "_local-mlops/registry/groups/"


@dataclass(frozen=True)
class Endpoint:
    url: str
    kind: str  # "configured" | "devenv" | "embedded"


def data_dir(settings: Settings) -> Path:
    """Where the emulators persist the buckets (mounted into the dev environment's container)."""
    return settings.state_path / "s3-data"


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
    """A moto server subprocess on ``host`` (a free port unless given), stopped by its pid.

    With ``data_dir`` it is moto behind ``durable_s3``: persisted there, restored from there.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        log: Path | None = None,
        data_dir: Path | None = None,
        users_lock: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.log = log
        self.data_dir = data_dir
        # With a users lock the server is detached and exits when no process holds the lock.
        self.users_lock = users_lock
        self._process: subprocess.Popen[bytes] | None = None

    def _argv_env(self) -> tuple[list[str], dict[str, str]]:
        env = process_environ()
        address = ["-H", self.host, "-p", str(self.port)]
        if self.data_dir is None:
            return [sys.executable, "-m", "moto.server", *address], env
        path = [str(DURABLE_S3_PATH), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        argv = [sys.executable, "-m", "durable_s3", "--data", str(self.data_dir), *address]
        if self.users_lock is not None:
            argv += ["--exit-when-unused", str(self.users_lock)]
        return argv, env

    def start(self, timeout: float = 120) -> str:
        argv, env = self._argv_env()
        sink: Any = subprocess.DEVNULL
        if self.log:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            sink = self.log.open("ab")
        try:
            self._process = subprocess.Popen(
                argv,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=self.users_lock is not None,  # outlives a Ctrl-C of its starter
            )
        finally:
            if self.log:
                sink.close()
        try:
            # A durable server loads its data before it opens the port: that can take a while.
            self._wait(timeout)
        except LocalMlopsError:
            self.stop()
            raise
        return self.url

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not is_reachable(self.url, timeout=0.5):
            if not self.running or time.monotonic() > deadline:
                where = f"; see {self.log}" if self.log else ""
                raise LocalMlopsError(f"the S3 emulator did not start at {self.url}{where}")
            time.sleep(0.1)

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
    """A durable moto server shared by the commands that need S3 while no dev environment runs.

    The first command starts it, detached; commands that come while it runs reuse it (its URL is
    in ``<data dir>/.server.json``), so concurrent commands see one bucket, not a copy each. Every
    user holds a shared lock on ``<data dir>/.users`` while it works (the kernel drops it when a
    process dies); the server exits once nobody holds it.
    """

    def __init__(self, settings: Settings, host: str | None = None) -> None:
        self.settings = settings
        self.host = host or (
            dockerhost.bridge_address() if dockerhost.docker_available() else "127.0.0.1"
        )
        self.data = data_dir(settings)
        self.log = settings.state_path / "logs" / "embedded-s3.log"
        self.url = ""
        self.started = False  # False: another command's server was reused
        self._users: IO[str] | None = None

    def start(self) -> str:
        self.data.mkdir(parents=True, exist_ok=True)
        self._users = (self.data / USERS_LOCK).open("a")
        fcntl.flock(self._users, fcntl.LOCK_SH)
        try:
            with (self.data / START_LOCK).open("a") as gate:
                fcntl.flock(gate, fcntl.LOCK_EX)
                self.url = running_embedded(self.settings) or self._spawn()
            ensure_bucket(self.settings, self.url)
            import_legacy_snapshot(self.settings, self.url)
        except BaseException:
            self.stop()
            raise
        return self.url

    def _spawn(self) -> str:
        server = MotoServer(
            self.host, log=self.log, data_dir=self.data, users_lock=self.data / USERS_LOCK
        )
        url = server.start()
        (self.data / SERVER_FILE).write_text(json.dumps({"url": url}))
        self.started = True
        return url

    def stop(self) -> None:
        """Stop using the server (it exits when no other command uses it)."""
        if self._users is not None:
            self._users.close()
            self._users = None


def running_embedded(settings: Settings) -> str:
    """The URL of a shared embedded emulator that answers, or ""."""
    try:
        url = str(json.loads((data_dir(settings) / SERVER_FILE).read_text()).get("url", ""))
    except (OSError, ValueError):
        return ""
    return url if url and is_reachable(url) else ""


def wait_until_unused(settings: Settings, timeout: float = IDLE_EXIT_SECONDS) -> str:
    """Wait for an embedded emulator nobody uses any more to exit and free the data dir (the
    command that just used one, e.g. to approve a version, has let go of it, but the server
    checks twice a second); the URL of one still serving after ``timeout``, else ""."""
    deadline = time.monotonic() + timeout
    while True:
        url = running_embedded(settings)
        if not url and _data_dir_free(settings):
            return ""
        if time.monotonic() >= deadline:
            return url or f"(a server exiting from {data_dir(settings)})"
        time.sleep(0.2)


def _data_dir_free(settings: Settings) -> bool:
    """No emulator process holds the data dir's lock."""
    path = data_dir(settings) / DATA_LOCK
    if not path.exists():
        return True
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def running_endpoint(settings: Settings) -> str | None:
    """The configured or dev environment endpoint if it answers; never starts an embedded one."""
    url = settings.s3_endpoint or devenv_url(settings)
    return url if url and is_reachable(url) else None


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
        with _emulator_guard(settings, Endpoint(settings.s3_endpoint, "configured")) as endpoint:
            yield endpoint
        return
    url = devenv_url(settings)
    if url and is_reachable(url):
        ensure_bucket(settings, url)
        with _emulator_guard(settings, Endpoint(url, "devenv")) as endpoint:
            yield endpoint
        return
    emulator = EmbeddedEmulator(settings)
    url = emulator.start()
    if announce:
        how = "Started an" if emulator.started else "Using the"
        announce(
            f"{how} embedded S3 emulator at {url}; it stops when no command uses it "
            "(`local-mlops up` keeps one running)."
        )
    try:
        with _emulator_guard(settings, Endpoint(url, "embedded")) as endpoint:
            yield endpoint
    finally:
        emulator.stop()


def emulator_lost(settings: Settings, endpoint: Endpoint) -> LocalMlopsError:
    """The one-line error for an emulator that stopped answering in the middle of a command."""
    kept = f"what earlier steps and commands wrote is kept in {data_dir(settings)}"
    if endpoint.kind == "embedded":
        return LocalMlopsError(
            f"the embedded S3 emulator at {endpoint.url} stopped during the command ({kept})",
            "re-run the command, or start a lasting emulator with `local-mlops up`",
        )
    return LocalMlopsError(
        f"the S3 emulator at {endpoint.url} stopped answering during the command ({kept})",
        "local-mlops up",
    )


@contextlib.contextmanager
def _emulator_guard(settings: Settings, endpoint: Endpoint) -> Iterator[Endpoint]:
    """Any failure while the emulator is gone is reported as that, not as its traceback."""
    try:
        yield endpoint
    except LocalMlopsError:
        raise
    except Exception as exc:
        if is_reachable(endpoint.url):
            raise
        raise emulator_lost(settings, endpoint) from exc


def restore_report(url: str) -> dict[str, Any]:
    """What the emulator at ``url`` loaded from its data dir when it started ({} if unknown)."""
    import urllib.request

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with direct.open(url.rstrip("/") + STATUS_PATH, timeout=5) as answer:
            return dict(json.loads(answer.read()).get("restored") or {})
    except (OSError, ValueError):
        return {}


def bucket_summary(settings: Settings, url: str) -> dict[str, int]:
    """Objects, datasets, run records and model versions in the bucket."""
    client = s3_client(settings, url)
    objects, datasets, runs, versions = 0, set(), 0, 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            objects += 1
            if key.startswith("datasets/") and key.count("/") >= 2:
                datasets.add(key.split("/")[1])
            elif key.startswith(RUNS_PREFIX) and key.endswith(".json"):
                runs += 1
            elif key.startswith(REGISTRY_PREFIX) and VERSIONS_MARK in key:
                versions += 1
    return {"objects": objects, "datasets": len(datasets), "runs": runs, "model_versions": versions}


def describe_restore(report: dict[str, Any], summary: dict[str, int]) -> str:
    """``restored 1,234 objects (56 MB): 3 datasets, 5 runs, 2 model versions``."""

    def count(n: int, what: str) -> str:
        return f"{n:,} {what}" if n == 1 else f"{n:,} {what}s"

    size = report.get("bytes", 0) / 1e6
    return (
        f"restored {count(int(report.get('objects', 0)), 'object')} ({size:,.1f} MB): "
        f"{count(summary['datasets'], 'dataset')}, {count(summary['runs'], 'run')}, "
        f"{count(summary['model_versions'], 'model version')}"
    )


def import_legacy_snapshot(settings: Settings, url: str) -> int:
    """Upload a snapshot written by earlier versions (``<state>/s3/<bucket>``) once, then retire it.

    The emulator persists what it is sent, so the snapshot's objects land in the data dir.
    """
    legacy = settings.state_path / "s3"
    root = legacy / settings.bucket / "objects"
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
    shutil.move(
        str(legacy / settings.bucket), str(settings.state_path / f"s3-imported-{settings.bucket}")
    )
    return len(todo)
