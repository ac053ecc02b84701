"""Starting, finding, talking to and stopping the router process (``routerd``).

The router is a detached process (its own session, so Ctrl-C in the CLI does not reach it) that
outlives the command which started it; ``<state_dir>/serving/router.json`` names its pid and
port. ``up`` starts it again after ``down`` or a reboot. It is a host process rather than a
container so it reaches the instances on 127.0.0.1 and needs no image of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_mlops.config import Settings, process_environ
from local_mlops.errors import LocalMlopsError
from local_mlops.serving.routerd import ROUTER_FILE

# Loopback traffic never goes through a proxy the environment may name.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

HOST = "127.0.0.1"


@dataclass(frozen=True)
class RouterInfo:
    pid: int
    port: int
    running: bool

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def _serving_dir(settings: Settings) -> Path:
    return settings.state_path / "serving"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def router_info(settings: Settings) -> RouterInfo | None:
    """The router named by router.json, and whether its process still runs."""
    path = _serving_dir(settings) / ROUTER_FILE
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return RouterInfo(int(doc["pid"]), int(doc["port"]), _alive(int(doc["pid"])))


def call(url: str, action: str, method: str = "GET", timeout: float = 30) -> dict[str, Any]:
    """One admin call to a router (``health``, ``stats``, ``reload``, ``flush``)."""
    data = b"" if method == "POST" else None
    request = urllib.request.Request(f"{url}/_local-mlops/{action}", data=data, method=method)
    try:
        with _DIRECT.open(request, timeout=timeout) as reply:
            return dict(json.loads(reply.read()))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise LocalMlopsError(
            f"the endpoint router at {url} does not answer ({exc})",
            "start it with `local-mlops up`",
        ) from exc


def spawn_detached(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a process in its own session (Ctrl-C in the CLI does not reach it), output to
    ``log_path``: it outlives the command that started it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=process_environ(),
            start_new_session=True,
            close_fds=True,
        )


def start_router(settings: Settings, s3_url: str, timeout: float = 20) -> RouterInfo:
    """Make sure a router runs on ``router_port``; start one detached when none does."""
    info = router_info(settings)
    if info and info.running:
        if info.port == settings.router_port:
            call(info.url, "reload", "POST")
            return info
        stop_router(settings)
    serving = _serving_dir(settings)
    (serving / "logs").mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "local_mlops.serving.routerd",
        "--state-dir",
        str(settings.state_path),
        "--port",
        str(settings.router_port),
        "--s3-endpoint",
        s3_url,
        "--region",
        settings.region,
    ]
    process = spawn_detached(argv, serving / "logs" / "router.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalMlopsError(
                f"the endpoint router exited with code {process.returncode}",
                f"see {serving / 'logs' / 'router.log'}; is port {settings.router_port} in use? "
                "(set router_port)",
            )
        info = router_info(settings)
        if info and info.pid == process.pid:
            return info
        time.sleep(0.05)
    process.terminate()
    raise LocalMlopsError(
        f"the endpoint router did not start within {timeout:.0f} s",
        f"see {serving / 'logs' / 'router.log'}",
    )


def reload_router(settings: Settings) -> None:
    """Tell a running router that endpoint documents changed (no-op when none runs)."""
    info = router_info(settings)
    if info and info.running:
        call(info.url, "reload", "POST")


def router_stats(settings: Settings) -> dict[str, Any]:
    info = router_info(settings)
    if not info or not info.running:
        return {"fleets": [], "capture_pending": 0}
    return call(info.url, "stats")


def router_metrics(settings: Settings) -> dict[str, Any] | None:
    """The router's timeline (``metrics.Timeline.snapshot``); None when no router runs."""
    info = router_info(settings)
    if not info or not info.running:
        return None
    return call(info.url, "metrics", timeout=5)


def flush_router(settings: Settings) -> int:
    info = router_info(settings)
    if not info or not info.running:
        return 0
    return int(call(info.url, "flush", "POST").get("written", 0))


def stop_router(settings: Settings, timeout: float = 40) -> bool:
    """SIGTERM the router (it drains and flushes capture); True when one was stopped."""
    info = router_info(settings)
    if not info:
        return False
    path = _serving_dir(settings) / ROUTER_FILE
    if not info.running:
        path.unlink(missing_ok=True)
        return False
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(info.pid) and time.monotonic() < deadline:
        _reap(info.pid)
        time.sleep(0.05)
    if _alive(info.pid):
        raise LocalMlopsError(
            f"the endpoint router (pid {info.pid}) did not stop within {timeout:.0f} s",
            f"kill {info.pid}",
        )
    path.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Collect the exit status when the router is our own child (tests start it in-process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
