"""Registry and run store against an in-process moto server (no Docker)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local_mlops.errors import LocalMlopsError
from local_mlops.stores.registry import LocalModelRegistry
from local_mlops.stores.runstore import RunStore


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    client = boto3.Session(
        aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1"
    ).client("s3", endpoint_url=moto_endpoint)
    return client


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"unit-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


def test_register_versions_arns_and_approval(s3: Any, bucket: str) -> None:
    registry = LocalModelRegistry(s3, bucket, "eu-west-1", account_id="111122223333")
    baselines = {"ModelDataQuality": {"Statistics": {"S3Uri": "s3://b/base/statistics.json"}}}
    first = registry.register(
        "grp",
        model_data_url="s3://b/m1",
        image="img",
        metrics={"accuracy": 0.9},
        drift_check_baselines=baselines,
    )
    second = registry.register("grp", model_data_url="s3://b/m2", image="img")
    assert (
        first["ModelPackageArn"] == "arn:aws:sagemaker:eu-west-1:111122223333:model-package/grp/1"
    )
    assert second["ModelPackageVersion"] == 2
    assert registry.list_groups()[0]["ModelPackageGroupArn"].endswith(":model-package-group/grp")
    assert registry.describe("grp/1")["Metrics"] == {"accuracy": 0.9}
    assert registry.describe("grp/1")["DriftCheckBaselines"] == baselines
    updated = registry.update_approval(second["ModelPackageArn"], "Approved", "looks good")
    assert updated["ModelApprovalStatus"] == "Approved"
    assert [p["ModelApprovalStatus"] for p in registry.list_packages("grp")] == [
        "PendingManualApproval",
        "Approved",
    ]
    with pytest.raises(LocalMlopsError):
        registry.update_approval("grp/1", "Maybe")
    with pytest.raises(LocalMlopsError):
        registry.describe("grp/9")


def test_concurrent_registrations_get_distinct_versions(s3: Any, bucket: str) -> None:
    registry = LocalModelRegistry(s3, bucket, "us-east-1")
    versions: list[int] = []
    barrier = threading.Barrier(4)

    def register() -> None:
        barrier.wait()
        for _ in range(3):
            versions.append(
                registry.register("race", model_data_url="s3://b/m", image="i")[
                    "ModelPackageVersion"
                ]
            )

    threads = [threading.Thread(target=register) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(versions) == list(range(1, 13))


def test_runstore_roundtrip(s3: Any, bucket: str) -> None:
    store = RunStore(s3, bucket)
    store.save({"ExecutionId": "a1", "Status": "Executing", "StartTime": "2026-01-01T00:00:00"})
    store.save({"ExecutionId": "b2", "Status": "Succeeded", "StartTime": "2026-01-02T00:00:00"})
    store.save({"ExecutionId": "a1", "Status": "Failed", "StartTime": "2026-01-01T00:00:00"})
    assert store.get("a1")["Status"] == "Failed"
    assert (
        store.get("arn:aws:sagemaker:us-east-1:0:pipeline/p/execution/b2")["Status"] == "Succeeded"
    )
    assert [r["ExecutionId"] for r in store.list()] == ["b2", "a1"]
    with pytest.raises(LocalMlopsError):
        store.get("nope")


def test_a_record_the_bucket_cannot_take_is_kept_and_written_once_it_is_back(
    s3: Any, bucket: str, tmp_path: Any
) -> None:
    import socket

    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there
    unreachable = boto3.Session(
        aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1"
    ).client("s3", endpoint_url=dead, config=Config(retries={"max_attempts": 1}))
    pending = tmp_path / "pending"
    record = {"ExecutionId": "lost1", "Status": "Failed", "FailureReason": "emulator died"}
    with pytest.raises(BotoCoreError):
        RunStore(unreachable, bucket, pending_dir=pending).save(record)
    assert (pending / "lost1.json").exists()

    store = RunStore(s3, bucket, pending_dir=pending)
    assert [r["Status"] for r in store.list()] == ["Failed"]
    assert store.get("lost1")["FailureReason"] == "emulator died"
    assert not (pending / "lost1.json").exists()


def test_approval_changes_are_kept_in_the_history(s3: Any, bucket: str) -> None:
    registry = LocalModelRegistry(s3, bucket, "us-east-1")
    registry.register("g", model_data_url="s3://b/m.tar.gz", image="img")
    registry.update_approval("g/1", "Approved", "beats the baseline")
    doc = registry.update_approval("g/1", "Rejected", "fails on rotated digits")
    assert doc["ModelApprovalStatus"] == "Rejected"
    history = registry.describe("g/1")["ApprovalHistory"]
    assert [(h["ModelApprovalStatus"], h["ApprovalDescription"]) for h in history] == [
        ("Approved", "beats the baseline"),
        ("Rejected", "fails on rotated digits"),
    ]
    assert all(h["Time"] and h["By"] for h in history)
