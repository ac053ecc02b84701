"""Nothing lost: ``docker kill`` of the dev environment's S3 emulator, after a run or in the middle
of one. After ``up`` every earlier run, version and dataset is back and version numbers continue;
the run in flight fails within seconds with the fix and is recorded as Failed."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import localmode_graphs as graphs
import pytest

from local_mlops.config import Settings, load_settings
from local_mlops.devenv import compose, dockerhost, emulator, image
from local_mlops.errors import LocalMlopsError
from local_mlops.stores.runstore import RunStore
from local_mlops.targets.localmode import ExtendedLocalPipelineSession
from local_mlops.targets.localmode.runs import EXECUTION_LABEL

pytestmark = pytest.mark.docker
DATASET_KEY = "datasets/tiny/shards/images-000.tar"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def devenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """``local-mlops up`` on its own port and state dir (the emulator image built once)."""
    real = load_settings(config_file=Path(__file__).parents[2] / "data" / "empty.toml")
    if not dockerhost.image_exists(image.emulator_spec().tag):
        image.build(real, image.emulator_spec(), print)  # the wheelhouse lives in the real state
    settings = replace(
        real,
        state_dir=str(tmp_path_factory.mktemp("durable-state")),
        emulator_port=free_port(),
        bucket="durable-it",
    )
    compose.up(settings, print)
    try:
        yield settings
    finally:
        compose.down(settings, print)


def kill_emulator(settings: Settings) -> None:
    subprocess.run(["docker", "kill", compose.s3_container(settings)], check=True, timeout=60)
    url = emulator.devenv_url(settings)
    assert url is not None and not emulator.is_reachable(url)


def session_for(settings: Settings, **kwargs: Any) -> ExtendedLocalPipelineSession:
    return ExtendedLocalPipelineSession(
        boto_session=boto3.Session(
            aws_access_key_id="a", aws_secret_access_key="b", region_name=settings.region
        ),
        s3_endpoint_url=emulator.devenv_url(settings),
        default_bucket=settings.bucket,
        cache_enabled=False,
        runstore=None,
        **kwargs,
    )


def runstore(settings: Settings, session: Any) -> RunStore:
    return RunStore(session.s3_client, settings.bucket, pending_dir=settings.state_path / "pending")


def run(session: Any, tiny_image: str, bucket: str, **kwargs: Any) -> Any:
    pipeline = graphs.train_evaluate_register(session, tiny_image, bucket, **kwargs)
    pipeline.upsert(role_arn=graphs.ROLE)
    return pipeline.start()


def test_after_docker_kill_and_up_everything_is_back(tiny_image: str, devenv: Settings) -> None:
    session = session_for(devenv)
    session.s3_client.put_object(Bucket=devenv.bucket, Key=DATASET_KEY, Body=b"shard")
    first = run(session, tiny_image, devenv.bucket)
    assert first.describe()["PipelineExecutionStatus"] == "Succeeded"

    kill_emulator(devenv)
    said: list[str] = []
    compose.up(devenv, said.append)
    assert any("1 dataset, 1 run, 1 model version" in line for line in said), said

    session = session_for(devenv)
    record = RunStore(session.s3_client, devenv.bucket).get(first.pipeline_execution_name)
    assert record["Status"] == "Succeeded"
    assert [p["ModelPackageVersion"] for p in session.registry.list_packages("tiny-models")] == [1]
    body = session.s3_client.get_object(Bucket=devenv.bucket, Key=DATASET_KEY)["Body"].read()
    assert body == b"shard"
    second = run(session, tiny_image, devenv.bucket)
    assert second.describe()["PipelineExecutionStatus"] == "Succeeded"
    versions = [p["ModelPackageVersion"] for p in session.registry.list_packages("tiny-models")]
    assert versions == [1, 2]


def test_a_run_whose_emulator_dies_fails_fast_and_is_recorded_failed(
    tiny_image: str, devenv: Settings
) -> None:
    training = threading.Event()

    def on_event(_id: str, step: str, status: str, _record: dict) -> None:
        if step == "Train" and status == "Executing":
            training.set()

    session = session_for(devenv, on_step_event=on_event)
    store = runstore(devenv, session)
    session.runstore = store
    killed_at: list[float] = []

    def killer() -> None:
        assert training.wait(timeout=300)
        time.sleep(5)  # the Train container is up and sleeping (it would run 120 s)
        kill_emulator(devenv)
        killed_at.append(time.monotonic())

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    with pytest.raises(LocalMlopsError) as caught:
        run(session, tiny_image, devenv.bucket, train_seconds=120)
    failed_after = time.monotonic() - killed_at[0]
    thread.join(timeout=10)

    assert failed_after < 20, failed_after
    assert "stopped answering during the run" in caught.value.message
    assert caught.value.fix is not None and caught.value.fix.startswith("local-mlops up")

    compose.up(devenv, print)
    latest = runstore(devenv, session_for(devenv)).list()[0]
    assert latest["Status"] == "Failed" and "S3 emulator" in latest["FailureReason"]
    left = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label={EXECUTION_LABEL}={latest['ExecutionId']}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert left.stdout.strip() == ""  # the Train container was stopped, not left training
    train = next(s for s in latest["Steps"] if s["StepName"] == "Train")
    assert train["StepStatus"] == "Failed"
    assert not list((devenv.state_path / "pending").glob("*.json"))
