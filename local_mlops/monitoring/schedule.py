"""``monitor schedule`` / ``monitor unschedule``: the monitoring job on a timer.

Locally the schedules are a file in the state dir (``<state_dir>/monitoring/schedules.json``)
and a detached scheduler process (``scheduled.py``, started like the endpoint router) runs
``local-mlops monitor run`` for each when it is due. The file outlives the process: ``down``
stops the scheduler, ``up`` starts it again when schedules remain, and the CLI that scheduled
them may exit at once. Each run's outcome is appended to ``<state_dir>/monitoring/runs.jsonl``.

In the cloud the same job is started by EventBridge Scheduler (``cloud_schedule.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError
from local_mlops.serving.captured import parse_window
from local_mlops.serving.daemon import spawn_detached

SCHEDULES_FILE = "schedules.json"
SCHEDULER_FILE = "scheduler.json"
RUNS_FILE = "runs.jsonl"


def folder(settings: Settings) -> Path:
    return settings.state_path / "monitoring"


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load(state: Path) -> dict[str, dict[str, Any]]:
    """endpoint -> {"every", "window", "created", "next_run"} (an unreadable file: none)."""
    try:
        return dict(json.loads((state / SCHEDULES_FILE).read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def save(state: Path, schedules: dict[str, dict[str, Any]]) -> None:
    state.mkdir(parents=True, exist_ok=True)
    scratch = state / f"{SCHEDULES_FILE}.part"
    scratch.write_text(json.dumps(schedules, indent=2, sort_keys=True))
    scratch.replace(state / SCHEDULES_FILE)  # the scheduler never reads half a file


def add(
    settings: Settings, endpoint: str, every: str, window: str | None, now: datetime | None = None
) -> dict[str, Any]:
    """Schedule ``endpoint`` every ``every`` (window: ``every`` unless given); its entry."""
    period = parse_window(every, "--every")
    parse_window(window or every)
    start = now or datetime.now(UTC)
    entry = {
        "every": every,
        "window": window or every,
        "created": iso(start),
        "next_run": iso(start + period),
    }
    schedules = load(folder(settings))
    schedules[endpoint] = entry
    save(folder(settings), schedules)
    return {"endpoint": endpoint, **entry}


def remove(settings: Settings, endpoint: str | None) -> list[str]:
    """Drop the schedule of ``endpoint`` (None: all of them); the endpoints unscheduled."""
    schedules = load(folder(settings))
    names = list(schedules) if endpoint is None else [endpoint]
    if endpoint is not None and endpoint not in schedules:
        raise LocalMlopsError(
            f"endpoint {endpoint!r} has no monitoring schedule",
            "list them with `local-mlops monitor schedules`",
        )
    for name in names:
        schedules.pop(name, None)
    save(folder(settings), schedules)
    return names


def due(schedules: dict[str, dict[str, Any]], now: datetime) -> list[str]:
    """The endpoints whose next run is now or past."""
    return [n for n, s in schedules.items() if datetime.fromisoformat(s["next_run"]) <= now]


def advance(entry: dict[str, Any], now: datetime) -> str:
    """The next run after ``now`` on the entry's grid (missed runs are not made up)."""
    period = parse_window(entry["every"])
    following = datetime.fromisoformat(entry["next_run"]) + period
    while following <= now:
        following += period
    return iso(following)


def scheduler_pid(settings: Settings) -> int | None:
    """The running scheduler's pid, None when none runs."""
    try:
        pid = int(json.loads((folder(settings) / SCHEDULER_FILE).read_text())["pid"])
    except (FileNotFoundError, ValueError, KeyError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def start_scheduler(settings: Settings, config: Path | None = None, timeout: float = 20) -> int:
    """Make sure the scheduler runs (detached, outliving this command); its pid."""
    pid = scheduler_pid(settings)
    if pid is not None:
        return pid
    logs = folder(settings) / "logs"
    argv = [sys.executable, "-m", "local_mlops.monitoring.scheduled"]
    argv += ["--state-dir", str(settings.state_path)]
    argv += ["--config", str(config)] if config else []
    process = spawn_detached(argv, logs / "scheduler.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalMlopsError(
                f"the monitoring scheduler exited with code {process.returncode}",
                f"see {logs / 'scheduler.log'}",
            )
        if scheduler_pid(settings) == process.pid:
            return process.pid
        time.sleep(0.05)
    process.terminate()
    raise LocalMlopsError("the monitoring scheduler did not start", f"see {logs}/scheduler.log")


def stop_scheduler(settings: Settings, timeout: float = 30) -> bool:
    """SIGTERM the scheduler (a job it started finishes first); True when one was stopped."""
    pid = scheduler_pid(settings)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and scheduler_pid(settings) == pid:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
        time.sleep(0.1)
    return True


def resume(settings: Settings) -> int:
    """``up``: start the scheduler again when schedules remain; how many there are."""
    schedules = load(folder(settings))
    if schedules:
        start_scheduler(settings)
    return len(schedules)


def recent_runs(settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    """The scheduler's last runs, newest last."""
    try:
        lines = (folder(settings) / RUNS_FILE).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines[-limit:] if line.strip()]
