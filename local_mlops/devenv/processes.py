"""Who started what: the CLI process that owns a run, its containers and its temp folders.

Everything the project starts carries Docker labels: ``local-mlops.project`` (the state dir, so
one installation's commands reconcile only their own leftovers), ``local-mlops.owner`` (the
process whose death makes the container an orphan; long-lived services such as the emulator or
endpoints carry none) and, for pipeline jobs, ``local-mlops.execution``. Temp folders carry an
``owner.json``. A process is named by pid, host and start time, so a reused pid is not mistaken
for the owner. ``stop_on_signals`` turns SIGINT and SIGTERM into ``StopRequested`` so a run can
stop its containers and record itself as Stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from local_mlops.config import Settings

PROJECT_LABEL = "local-mlops.project"
OWNER_LABEL = "local-mlops.owner"
EXECUTION_LABEL = "local-mlops.execution"
OWNER_FILE = "owner.json"


@dataclass(frozen=True)
class Owner:
    """A process, named so that a reused pid does not pass for it."""

    pid: int
    host: str
    started: float  # the process's start time, seconds since the epoch

    @classmethod
    def current(cls) -> Owner:
        return cls(os.getpid(), socket.gethostname(), round(psutil.Process().create_time(), 2))

    def alive(self) -> bool | None:
        """Whether the process still runs; None when it ran on another host (cannot tell)."""
        if self.host != socket.gethostname():
            return None
        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
            return abs(process.create_time() - self.started) < 1.0
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def label(self) -> str:
        return f"{self.host}:{self.pid}:{self.started}"

    @classmethod
    def from_label(cls, text: str) -> Owner | None:
        host, _, rest = text.rpartition(":")
        host, _, pid = host.rpartition(":")
        try:
            return cls(int(pid), host, float(rest))
        except ValueError:
            return None

    def as_record(self) -> dict[str, Any]:
        return {"Pid": self.pid, "Host": self.host, "ProcessStartTime": self.started}

    @classmethod
    def from_record(cls, record: Any) -> Owner | None:
        if not isinstance(record, dict):
            return None
        try:
            return cls(int(record["Pid"]), str(record["Host"]), float(record["ProcessStartTime"]))
        except (KeyError, TypeError, ValueError):
            return None


def project_of(settings: Settings) -> str:
    """The project label's value: the state dir, one per installation."""
    return str(settings.state_path.resolve())


def container_labels(project: str, execution_id: str | None = None) -> dict[str, str]:
    """Labels for a container that must not outlive the current process."""
    labels = {PROJECT_LABEL: project, OWNER_LABEL: Owner.current().label()}
    if execution_id:
        labels[EXECUTION_LABEL] = execution_id
    return labels


def work_root() -> Path:
    """The parent of every temp folder the project makes (local mode refuses to mount ~)."""
    root = Path(tempfile.gettempdir()) / f"local-mlops-{os.getuid()}"
    root.mkdir(parents=True, exist_ok=True)
    return root


def claim_folder(folder: Path, project: str, **extra: str) -> Path:
    """Mark a temp folder as the current process's, so an orphaned one can be found."""
    folder.mkdir(parents=True, exist_ok=True)
    owner = {**Owner.current().as_record(), "Project": project, **extra}
    (folder / OWNER_FILE).write_text(json.dumps(owner))
    return folder


def folder_owner(folder: Path) -> tuple[Owner | None, str]:
    """The owner and project written by ``claim_folder``; (None, "") for unclaimed folders."""
    try:
        record = json.loads((folder / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None, ""
    return Owner.from_record(record), str(record.get("Project", ""))


class StopRequested(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived while a run was in progress."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.execution_id: str | None = None


_received: list[StopRequested] = []


def stop_requested() -> StopRequested | None:
    """The stop raised inside the current ``stop_on_signals`` block, if any.

    The SDK's telemetry decorator around ``Pipeline.start`` returns from a ``finally`` and so
    swallows a KeyboardInterrupt (returning None): callers re-raise this one after the call.
    """
    return _received[-1] if _received else None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise ``StopRequested`` in the main thread.

    Python's default for SIGTERM ends the process at once, leaving its containers running.
    Outside the main thread (signals cannot be handled there) the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        stop = StopRequested(signal.Signals(signum).name)
        _received.append(stop)
        raise stop

    _received.clear()
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _received.clear()
