"""Nothing orphaned: a killed run is reconciled by the next command; a stopped one cleans up.

Real processes: ``orphan_run.py`` runs a one-step pipeline (the job container sleeps) through
the same local target as ``local-mlops run``; the test kills or signals it mid-step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from local_mlops.devenv.processes import EXECUTION_LABEL, PROJECT_LABEL, work_root
from local_mlops.stores.runstore import RunStore

pytestmark = pytest.mark.docker

SCRIPT = Path(__file__).with_name("orphan_run.py")
ROOT = Path(__file__).resolve().parents[3]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_mlops", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        check=False,
    )


def containers(label: str) -> list[str]:
    done = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True
    )
    return done.stdout.split()


@pytest.fixture
def settings_env(
    moto_url: str, bucket: str, isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The CLI and the script share the test's emulator, bucket and state dir; returns the project."""
    monkeypatch.setenv("LOCAL_MLOPS_S3_ENDPOINT", moto_url)
    monkeypatch.setenv("LOCAL_MLOPS_BUCKET", bucket)
    return str(isolated_state.resolve())


def start_run(tiny_image: str, project: str, seconds: int = 300) -> tuple[subprocess.Popen, str]:
    """Start the script and wait until its job container runs; returns (process, execution id)."""
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), tiny_image, str(seconds)],
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        done = subprocess.run(
            [
                "docker",
                "ps",
                "--filter",
                f"label={PROJECT_LABEL}={project}",
                "--format",
                f'{{{{.Label "{EXECUTION_LABEL}"}}}}',
            ],
            capture_output=True,
            text=True,
        )
        if done.stdout.strip():
            return process, done.stdout.split()[0]
        time.sleep(0.5)
    process.kill()
    raise AssertionError("the job container did not start within 120 s")


def test_killed_cli_is_reconciled_by_the_next_command(
    tiny_image: str, settings_env: str, s3: Any, bucket: str
) -> None:
    process, execution_id = start_run(tiny_image, settings_env)
    run_root = work_root() / f"local-mlops-run-{execution_id}"
    assert run_root.exists()

    # While it runs, status shows it and leaves it alone.
    status = json.loads(cli("status", "--json").stdout)
    assert [r["execution"] for r in status["runs"]] == [execution_id]
    assert [c["execution"] for c in status["containers"]] == [execution_id]
    assert status["containers"][0]["state"] == "running"

    process.kill()  # kill -9: no cleanup runs
    process.wait(timeout=30)
    assert containers(f"{EXECUTION_LABEL}={execution_id}")
    assert RunStore(s3, bucket).get(execution_id)["Status"] == "Executing"

    listed = cli("runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    reason = f"the CLI that ran it stopped (pid {process.pid})"
    told = " ".join(listed.stderr.split())  # rich wraps long lines
    assert f"Run {execution_id} was left Executing: marked Failed ({reason})" in told
    record = next(r for r in json.loads(listed.stdout) if r["ExecutionId"] == execution_id)
    assert record["Status"] == "Failed" and record["FailureReason"] == reason
    assert record["Steps"][0]["StepStatus"] == "Failed"
    assert containers(f"{EXECUTION_LABEL}={execution_id}") == []
    assert not run_root.exists()
    assert json.loads(cli("status", "--json").stdout)["runs"] == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_the_run_and_its_containers(
    tiny_image: str, settings_env: str, s3: Any, bucket: str, sig: signal.Signals
) -> None:
    process, execution_id = start_run(tiny_image, settings_env)
    process.send_signal(sig)
    process.wait(timeout=60)  # the job would sleep 300 s
    record = RunStore(s3, bucket).get(execution_id)
    assert record["Status"] == "Stopped"
    assert record["FailureReason"] == f"stopped by {sig.name}"
    assert record["Steps"][0]["StepStatus"] == "Stopped"
    assert containers(f"{EXECUTION_LABEL}={execution_id}") == []
    assert not (work_root() / f"local-mlops-run-{execution_id}").exists()
    assert RunStore(s3, bucket).running_ids() == []
