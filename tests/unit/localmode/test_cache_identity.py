"""The cache key pins content (image IDs, input digests) and every lookup says why (no Docker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local_mlops.pipeline.datasets import source_fingerprint
from local_mlops.targets.localmode.cache import StepCache, cache_key, changed_paths
from local_mlops.targets.localmode.identity import (
    ABSENT,
    describe_change,
    prefix_digest,
    request_images,
    request_inputs,
)

PROCESSING = {
    "ProcessingJobName": "Validate-1",
    "AppSpecification": {"ImageUri": "local-mlops-runtime:0.1.0"},
    "ProcessingInputs": [
        {"InputName": "input-1", "S3Input": {"S3Uri": "s3://b/datasets/flowers/shards/"}}
    ],
    "ProcessingOutputConfig": {
        "Outputs": [{"OutputName": "report", "S3Output": {"S3Uri": "s3://b/out/report"}}]
    },
}
TRAINING = {
    "TrainingJobName": "Train-1",
    "AlgorithmSpecification": {"TrainingImage": "img:1"},
    "InputDataConfig": [
        {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/split/train"}}}
    ],
    "OutputDataConfig": {"S3OutputPath": "s3://b/models"},
    "HyperParameters": {"epochs": "5"},
}


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    return boto3.Session(
        aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1"
    ).client("s3", endpoint_url=moto_endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"unit-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


def test_requests_name_their_images_and_inputs_not_outputs() -> None:
    assert request_images(PROCESSING) == ["local-mlops-runtime:0.1.0"]
    assert request_inputs(PROCESSING) == ["s3://b/datasets/flowers/shards/"]
    assert request_images(TRAINING) == ["img:1"]
    assert request_inputs(TRAINING) == ["s3://b/split/train"]
    tuning = {
        "TrainingJobDefinition": {k: v for k, v in TRAINING.items() if k != "HyperParameters"}
    }
    assert request_images(tuning) == ["img:1"]
    assert request_inputs(tuning) == ["s3://b/split/train"]


def test_key_changes_with_content_identity_not_with_job_names() -> None:
    content = {"images": {"img:1": "sha256:aaa"}, "inputs": {"s3://b/split/train": "sha256:1"}}
    renamed = {**TRAINING, "TrainingJobName": "Train-2"}
    key = cache_key("p", "Train", "Training", TRAINING, content)
    assert key == cache_key("p", "Train", "Training", renamed, content)
    rebuilt = {**content, "images": {"img:1": "sha256:bbb"}}
    new_data = {**content, "inputs": {"s3://b/split/train": "sha256:2"}}
    assert key != cache_key("p", "Train", "Training", TRAINING, rebuilt)
    assert key != cache_key("p", "Train", "Training", TRAINING, new_data)
    # Without content the key is the request key: the name alone.
    assert cache_key("p", "Train", "Training", TRAINING) != key


def test_prefix_digest_follows_objects_under_the_prefix(s3: Any, bucket: str) -> None:
    uri = f"s3://{bucket}/datasets/flowers/"
    assert prefix_digest(s3, uri) == ABSENT
    s3.put_object(Bucket=bucket, Key="datasets/flowers/red/1.png", Body=b"red")
    s3.put_object(Bucket=bucket, Key="datasets/other/1.png", Body=b"other")
    first = prefix_digest(s3, uri)
    assert first.startswith("sha256:")
    assert prefix_digest(s3, uri) == first
    s3.put_object(Bucket=bucket, Key="datasets/other/2.png", Body=b"outside the prefix")
    assert prefix_digest(s3, uri) == first
    s3.put_object(Bucket=bucket, Key="datasets/flowers/yellow/1.png", Body=b"yellow")
    added = prefix_digest(s3, uri)
    assert added != first
    s3.put_object(Bucket=bucket, Key="datasets/flowers/red/1.png", Body=b"RED")
    assert prefix_digest(s3, uri) not in (first, added)


def test_describe_change_names_the_image_ids_and_inputs() -> None:
    before = {"images": {"img:1": "sha256:" + "a" * 64}, "inputs": {"s3://b/x/": "sha256:1"}}
    after = {"images": {"img:1": "sha256:" + "b" * 64}, "inputs": {"s3://b/x/": "sha256:2"}}
    assert describe_change(before, after) == [
        f"image img:1 changed (sha256:{'a' * 12} -> sha256:{'b' * 12})",
        "input s3://b/x/ changed",
    ]
    assert describe_change(before, before) == []


def test_changed_paths() -> None:
    new = {**TRAINING, "HyperParameters": {"epochs": "6"}}
    assert changed_paths(TRAINING, new) == ["HyperParameters.epochs"]
    assert changed_paths(TRAINING, TRAINING) == []


def test_lookup_says_why_it_hit_or_missed(s3: Any, bucket: str) -> None:
    cache = StepCache(s3, bucket)
    content = {"images": {"img:1": "sha256:" + "a" * 64}, "inputs": {"s3://b/split/train": "d1"}}
    request_key = cache_key("p", "Train", "Training", TRAINING)
    key = cache_key("p", "Train", "Training", TRAINING, content)

    def lookup(arguments: dict, identity: dict) -> Any:
        return cache.lookup(
            "p",
            "Train",
            "Processing",  # no artifacts to check
            cache_key("p", "Train", "Training", arguments, identity),
            "P30D",
            request_key=cache_key("p", "Train", "Training", arguments),
            content=identity,
            arguments=arguments,
        )

    assert lookup(TRAINING, content).reason == "no earlier run"
    arn = "arn:aws:sagemaker:us-east-1:0:pipeline/p/execution/abc123"
    cache.store("p", "Train", "Processing", key, {}, arn, request_key, content, TRAINING)

    hit = lookup(TRAINING, content)
    assert hit.hit and hit.reason == "cache hit from execution abc123"
    assert hit.as_record()["SourceExecutionId"] == "abc123"

    rebuilt = {**content, "images": {"img:1": "sha256:" + "b" * 64}}
    miss = lookup(TRAINING, rebuilt)
    assert not miss.hit
    assert miss.reason == (
        f"image img:1 changed (sha256:{'a' * 12} -> sha256:{'b' * 12}) since execution abc123"
    )
    new_data = {**content, "inputs": {"s3://b/split/train": "d2"}}
    assert lookup(TRAINING, new_data).reason == (
        "input s3://b/split/train changed since execution abc123"
    )
    more_epochs = {**TRAINING, "HyperParameters": {"epochs": "6"}}
    assert lookup(more_epochs, content).reason == (
        "the request changed since execution abc123 (HyperParameters.epochs)"
    )
    assert request_key != key


def test_source_fingerprint_sees_a_class_added_on_disk(tmp_path: Path) -> None:
    for name in ("red", "green", "blue"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.png").write_bytes(name.encode())
    first = source_fingerprint("imagefolder", tmp_path, "sha256:img")
    assert source_fingerprint("imagefolder", tmp_path, "sha256:img") == first
    assert source_fingerprint("imagefolder", tmp_path, "sha256:rebuilt") != first
    (tmp_path / "yellow").mkdir()
    (tmp_path / "yellow" / "1.png").write_bytes(b"yellow")
    assert source_fingerprint("imagefolder", tmp_path, "sha256:img") != first


def test_runs_describe_shows_why_each_step_was_or_was_not_cached(
    s3: Any, bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from local_mlops.cli.app import app
    from local_mlops.stores.runstore import RunStore

    reason = f"image img:1 changed (sha256:{'a' * 12} -> sha256:{'b' * 12}) since execution abc"
    RunStore(s3, bucket).save(
        {
            "PipelineExecutionArn": "arn:aws:sagemaker:us-east-1:0:pipeline/p/execution/def",
            "ExecutionId": "def",
            "Status": "Succeeded",
            "Steps": [
                {"StepName": "Train", "StepStatus": "Succeeded", "Cache": {"Reason": reason}},
                {
                    "StepName": "Evaluate",
                    "StepStatus": "Succeeded",
                    "CacheHitResult": {"SourcePipelineExecutionArn": "x/abc"},
                    "Cache": {"Hit": True, "Reason": "cache hit from execution abc"},
                },
            ],
        }
    )
    monkeypatch.setenv("LOCAL_MLOPS_S3_ENDPOINT", moto_endpoint)
    monkeypatch.setenv("LOCAL_MLOPS_BUCKET", bucket)
    monkeypatch.setenv("COLUMNS", "250")
    result = CliRunner().invoke(app, ["runs", "describe", "def"])
    assert result.exit_code == 0, result.output
    assert reason in result.output
    assert "cache hit from execution abc" in result.output
