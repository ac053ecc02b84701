"""The core budget: local jobs of every run on this machine share its cores instead of fighting.

Two trainings started together on 2 cores each took 206 s against 45 s alone: their threads
oversubscribe the machine. So a local training or processing job holds cores while it runs: a
cross-process semaphore made of one lock file per core under ``<state dir>/cores`` (``flock``,
which the kernel releases when the holding process dies, so a killed run frees its cores). A job
takes as many cores as it would use (all of the machine's; a tuning trial its share when trials
run side by side), waits while they are held and says by whom. Claiming several cores is done
under a gate lock, one claimant at a time, so two runs cannot each hold half and wait forever.

Every claim and release is appended to ``<state dir>/cores/log.jsonl`` (time, pid, execution,
job), which ``local-mlops`` tests and benchmarks read to show jobs never overlapped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

POLL_SECONDS = 0.5
LOG_NAME = "log.jsonl"


class CoreBudget:
    """``total`` cores, shared by every process that uses the same folder."""

    def __init__(self, root: Path, total: int | None = None) -> None:
        self.root = Path(root)
        self.total = max(1, total or os.cpu_count() or 1)
        self.root.mkdir(parents=True, exist_ok=True)

    def _slot(self, index: int) -> Path:
        return self.root / f"core-{index}.lock"

    def cores_for(self, parallel: int = 1) -> int:
        """What one of ``parallel`` side-by-side jobs takes: the machine's cores, shared out."""
        machine = os.cpu_count() or 1
        return max(1, min(self.total, machine // max(1, parallel)))

    @contextlib.contextmanager
    def hold(
        self,
        cores: int,
        holder: dict[str, Any],
        on_wait: Callable[[str], None] | None = None,
    ) -> Iterator[None]:
        """Hold ``cores`` of the budget for the duration of the block, waiting for them if need be."""
        cores = max(1, min(cores, self.total))
        said = ""
        waited_since = time.monotonic()
        while True:
            with self._gate():
                handles = self._try_claim(cores)
                if handles is not None:
                    break
                holders = self._holders()
            # No holder named: one is releasing (its slots emptied, not yet unlocked); keep
            # the message that named it rather than flashing an anonymous one.
            message = _waiting_message(holders) if holders or not said else said
            if on_wait is not None and message != said:
                on_wait(message)
                said = message
            time.sleep(POLL_SECONDS)
        if said and on_wait is not None:
            on_wait("")
        record = {**holder, "pid": os.getpid(), "cores": cores, "since": time.time()}
        for handle in handles:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(record))
            handle.flush()
        self._log("claim", record, waited=time.monotonic() - waited_since)
        try:
            yield
        finally:
            self._log("release", record)
            for handle in handles:
                handle.seek(0)
                handle.truncate()
                handle.flush()
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()

    @contextlib.contextmanager
    def _gate(self) -> Iterator[None]:
        with (self.root / "gate.lock").open("a") as gate:
            fcntl.flock(gate, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)

    def _try_claim(self, cores: int) -> list[IO[str]] | None:
        handles: list[IO[str]] = []
        for index in range(self.total):
            handle = self._slot(index).open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handles.append(handle)
            if len(handles) == cores:
                return handles
        for held in handles:
            fcntl.flock(held, fcntl.LOCK_UN)
            held.close()
        return None

    def _holders(self) -> list[dict[str, Any]]:
        found = []
        for index in range(self.total):
            try:
                text = self._slot(index).read_text()
                if text:
                    found.append(json.loads(text))
            except (OSError, ValueError):
                continue
        return found

    def _log(self, event: str, record: dict[str, Any], **extra: Any) -> None:
        line = json.dumps({"event": event, "t": time.time(), **record, **extra}) + "\n"
        with (self.root / LOG_NAME).open("a") as log:
            log.write(line)

    def log(self) -> list[dict[str, Any]]:
        """Every claim and release so far, oldest first."""
        path = self.root / LOG_NAME
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _waiting_message(holders: list[dict[str, Any]]) -> str:
    runs = sorted({str(h.get("execution") or f"pid {h.get('pid')}") for h in holders})
    if not runs:
        return "waiting for cores"
    who = ", ".join(f"run {r}" for r in runs)
    return f"waiting for cores ({who} {'holds' if len(runs) == 1 else 'hold'} them)"
