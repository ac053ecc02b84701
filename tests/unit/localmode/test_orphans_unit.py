"""Owners, orphaned run records and a stopped run's exit, without Docker."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from local_mlops.cli.app import app
from local_mlops.devenv.orphans import owner_gone_reason
from local_mlops.devenv.processes import (
    Owner,
    StopRequested,
    claim_folder,
    folder_owner,
    stop_on_signals,
    stop_requested,
)
from local_mlops.stores.runstore import RunStore


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield boto3.Session(
        aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1"
    ).client("s3", endpoint_url=f"http://{host}:{port}")
    server.stop()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"unit-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


def gone_owner() -> Owner:
    """A real process that has exited (and was reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = Owner(process.pid, Owner.current().host, Owner.current().started)
    process.wait()
    return owner


def test_owner_identity_and_liveness(tmp_path: Path) -> None:
    me = Owner.current()
    assert me.alive() is True
    assert Owner.from_label(me.label()) == me
    assert Owner.from_record(me.as_record()) == me
    assert Owner(me.pid, me.host, me.started - 100).alive() is False  # a reused pid
    assert Owner(me.pid, "another-host", me.started).alive() is None
    assert gone_owner().alive() is False
    claim_folder(tmp_path / "run", "/state", Execution="abc")
    assert folder_owner(tmp_path / "run") == (me, "/state")
    assert folder_owner(tmp_path) == (None, "")


def record(execution_id: str, owner: Owner, status: str = "Executing") -> dict:
    return {
        "PipelineExecutionArn": f"arn:aws:sagemaker:us-east-1:0:pipeline/p/execution/{execution_id}",
        "ExecutionId": execution_id,
        "Status": status,
        "StartTime": "2026-12-01T20:00:00+00:00",
        "Owner": owner.as_record(),
        "Steps": [{"StepName": "Train", "StepStatus": "Executing"}],
    }


def test_fail_orphans_fails_only_runs_whose_cli_is_gone(s3: Any, bucket: str) -> None:
    store = RunStore(s3, bucket)
    dead = gone_owner()
    store.save(record("orphan", dead))
    store.save(record("live", Owner.current()))
    store.save(record("done", dead))
    store.save(record("done", dead, status="Succeeded"))
    assert sorted(store.running_ids()) == ["live", "orphan"]

    failed = RunStore(s3, bucket).fail_orphans(owner_gone_reason)  # as the next command would
    reason = f"the CLI that ran it stopped (pid {dead.pid})"
    assert [r["ExecutionId"] for r in failed] == ["orphan"]
    orphan = store.get("orphan")
    assert orphan["Status"] == "Failed" and orphan["FailureReason"] == reason
    assert orphan["Steps"][0] == {
        **orphan["Steps"][0],
        "StepStatus": "Failed",
        "FailureReason": reason,
    }
    assert orphan["EndTime"]
    assert store.get("live")["Status"] == "Executing"
    assert store.running_ids() == ["live"]


def test_stop_on_signals_turns_sigterm_into_stop_requested() -> None:
    with pytest.raises(StopRequested) as raised, stop_on_signals():
        signal.raise_signal(signal.SIGTERM)
    assert raised.value.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL

    def swallowing() -> None:  # as the SDK's telemetry decorator around Pipeline.start does
        try:
            signal.raise_signal(signal.SIGINT)
        finally:
            return  # noqa: B012

    with stop_on_signals():
        swallowing()
        stopped = stop_requested()
        assert stopped is not None and stopped.signal_name == "SIGINT"
    assert stop_requested() is None


def test_run_stopped_by_a_signal_says_so_and_exits_128_plus_signal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from local_mlops.pipeline import runner

    def stopped(*_args: Any, **_kwargs: Any) -> None:
        stop = StopRequested("SIGTERM")
        stop.execution_id = "abc123"
        raise stop

    monkeypatch.setattr(runner, "run", stopped)
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 128 + signal.SIGTERM
    told = " ".join(result.output.split())
    assert "the run was stopped by SIGTERM" in told
    assert "local-mlops runs describe abc123" in told
