"""The core budget: jobs of different processes take turns, say who they wait for, and a killed
holder's cores come back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from local_mlops.targets.localmode.cores import CoreBudget

HOLD = """
import sys, time
from pathlib import Path
from local_mlops.targets.localmode.cores import CoreBudget
budget = CoreBudget(Path(sys.argv[1]), 2)
with budget.hold(2, {"execution": sys.argv[2], "job": "train"}):
    print("holding", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def holder(root: Path, execution: str, seconds: float) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root), execution, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "holding"
    return process


def test_a_second_claimant_waits_and_names_the_holder(tmp_path: Path) -> None:
    first = holder(tmp_path, "run-a", 1.5)
    messages: list[str] = []
    budget = CoreBudget(tmp_path, 2)
    started = time.monotonic()
    with budget.hold(2, {"execution": "run-b", "job": "train"}, messages.append):
        waited = time.monotonic() - started
    first.wait(timeout=10)
    assert messages == ["waiting for cores (run run-a holds them)", ""]
    assert waited > 0.5
    claims = [e for e in budget.log() if e["event"] == "claim"]
    releases = [e for e in budget.log() if e["event"] == "release"]
    assert [c["execution"] for c in claims] == ["run-a", "run-b"]
    assert releases[0]["execution"] == "run-a" and releases[0]["t"] <= claims[1]["t"]


def test_a_killed_holder_frees_its_cores(tmp_path: Path) -> None:
    first = holder(tmp_path, "killed", 60)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    started = time.monotonic()
    with CoreBudget(tmp_path, 2).hold(2, {"execution": "next"}):
        assert time.monotonic() - started < 2


def test_side_by_side_jobs_share_the_cores(tmp_path: Path) -> None:
    budget = CoreBudget(tmp_path, 2)
    machine = os.cpu_count() or 1
    assert budget.cores_for(1) == min(2, machine)
    with budget.hold(1, {"job": "trial-1"}), budget.hold(1, {"job": "trial-2"}):
        assert len([e for e in budget.log() if e["event"] == "claim"]) == 2
