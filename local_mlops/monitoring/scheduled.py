"""The scheduler process: ``python -m local_mlops.monitoring.scheduled --state-dir DIR``.

Started detached by ``monitor schedule`` (and by ``up``), it writes its pid to
``<state_dir>/monitoring/scheduler.json``, reads ``schedules.json`` again before each decision,
and runs ``local-mlops monitor run --endpoint E --window W --json`` for each schedule when it
is due, one at a time, appending each outcome to ``runs.jsonl``. It exits on SIGTERM (after the
job in flight) or when no schedule is left.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local_mlops.monitoring.schedule import (
    RUNS_FILE,
    SCHEDULER_FILE,
    advance,
    due,
    iso,
    load,
    save,
)

JOB_TIMEOUT = 3600.0


def run_once(state_dir: Path, endpoint: str, window: str, config: str | None) -> dict[str, Any]:
    """One ``monitor run`` as a child process; what it reported (or why it failed)."""
    argv = [sys.executable, "-m", "local_mlops", *(["--config", config] if config else [])]
    argv += ["monitor", "run", "--endpoint", endpoint, "--window", window, "--json"]
    env = {**os.environ, "LOCAL_MLOPS_STATE_DIR": str(state_dir)}
    started = datetime.now(UTC)
    outcome: dict[str, Any] = {"endpoint": endpoint, "window": window, "started": iso(started)}
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return {**outcome, "exit_code": None, "error": f"timed out after {JOB_TIMEOUT:.0f} s"}
    sys.stdout.write(done.stderr)  # the job's own output, into the scheduler's log
    outcome["exit_code"] = done.returncode
    try:
        report = json.loads(done.stdout)
        outcome.update(
            violation_count=report.get("violation_count"),
            violated_features=report.get("violated_features", []),
            report_uri=report.get("report_uri"),
        )
    except ValueError:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        outcome["error"] = lines[-1] if lines else "no report"
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_mlops.monitoring.scheduled")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--config", default=None)
    parser.add_argument("--poll-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    state = args.state_dir / "monitoring"
    state.mkdir(parents=True, exist_ok=True)
    pid_file = state / SCHEDULER_FILE
    pid_file.write_text(json.dumps({"pid": os.getpid(), "started": iso(datetime.now(UTC))}))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"monitoring scheduler {os.getpid()} started", flush=True)
    try:
        while not stop.is_set():
            schedules = load(state)
            if not schedules:
                print("no schedules left; exiting", flush=True)
                break
            for endpoint in due(schedules, datetime.now(UTC)):
                if stop.is_set():
                    break
                outcome = run_once(args.state_dir, endpoint, schedules[endpoint]["window"],
                                   args.config)  # fmt: skip
                current = load(state)  # the CLI may have changed them meanwhile
                if endpoint in current:
                    current[endpoint]["next_run"] = advance(current[endpoint], datetime.now(UTC))
                    current[endpoint]["last_run"] = outcome
                    save(state, current)
                with (state / RUNS_FILE).open("a") as runs:
                    runs.write(json.dumps(outcome) + "\n")
                print(json.dumps(outcome), flush=True)
            upcoming = [datetime.fromisoformat(s["next_run"]) for s in load(state).values()]
            wait = min(upcoming, default=datetime.now(UTC)) - datetime.now(UTC)
            stop.wait(max(0.2, min(args.poll_seconds, wait.total_seconds())))
    finally:
        try:
            if json.loads(pid_file.read_text()).get("pid") == os.getpid():
                pid_file.unlink()
        except (FileNotFoundError, ValueError):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
