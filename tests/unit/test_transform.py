"""The transform command's pieces: locations, inputs, output names, results and the summary."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from local_mlops.cli.app import app
from local_mlops.config import load_settings
from local_mlops.errors import LocalMlopsError
from local_mlops.serving import batch
from local_mlops.targets import transform
from local_mlops.targets.localmode.transform import ExtendedLocalTransformJob, output_key

runner = CliRunner()
BUCKET = "unit-bucket"


@pytest.fixture
def s3() -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_an_s3_prefix_is_used_as_given_and_a_folder_is_staged_in_the_bucket() -> None:
    given = batch.locate("s3://data/in", "mine", "job-1", "input")
    assert (given.uri, given.bucket, given.prefix, given.folder) == (
        "s3://data/in/", "data", "in/", None,
    )  # fmt: skip
    staged = batch.locate("photos", "mine", "job-1", "output")
    assert staged.uri == "s3://mine/tmp/transform/job-1/output/"
    assert staged.folder == Path("photos")


@pytest.mark.parametrize(
    ("given", "says"), [("s3:///x", "names no bucket"), ("http://host/x", "neither a folder")]
)
def test_a_bad_location_names_the_fix(given: str, says: str) -> None:
    with pytest.raises(LocalMlopsError, match=says) as caught:
        batch.locate(given, "b", "job", "input")
    assert "s3://BUCKET/PREFIX/" in caught.value.fix


def test_image_files_keep_subfolders_and_skip_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "a.png").write_bytes(b"x")
    (tmp_path / "b.jpg").write_bytes(b"x")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "c.png").write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in batch.image_files(tmp_path)] == [
        "b.jpg",
        "cats/a.png",
    ]


def test_an_empty_or_missing_input_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LocalMlopsError, match="holds no files"):
        batch.image_files(tmp_path)
    with pytest.raises(LocalMlopsError, match="is not a folder"):
        batch.image_files(tmp_path / "missing")


@pytest.mark.parametrize(
    ("prefix", "key", "out", "expected"),
    [
        ("in/", "in/a.png", "out/", "out/a.png.out"),
        ("in/", "in/cats/a.png", "out", "out/cats/a.png.out"),
        ("in/im", "in/img-1.png", "out/", "out/img-1.png.out"),  # a prefix that is not a folder
        ("", "a.png", "", "a.png.out"),
    ],
)
def test_outputs_are_named_as_sagemaker_names_them(
    prefix: str, key: str, out: str, expected: str
) -> None:
    assert output_key(prefix, key, out) == expected


def test_parse_out_reads_predictions_errors_and_garbage() -> None:
    answer = {"predictions": [{"label": "7", "top_k": [{"label": "7", "probability": 0.8,
                                                          "index": 7}]}]}  # fmt: skip
    good = batch.parse_out("a.png", json.dumps(answer).encode())
    assert (good.label, good.top, good.error) == ("7", [{"label": "7", "probability": 0.8}], "")
    bad = batch.parse_out("b.png", b'{"error": "not an image", "status": 400}')
    assert (bad.label, bad.error) == (None, "not an image")
    assert "not JSON" in batch.parse_out("c.png", b"<html>").error


def test_summary_counts_classes_errors_and_speed() -> None:
    results = [
        batch.Result("a", label="cat"),
        batch.Result("b", label="dog"),
        batch.Result("c", label="cat"),
        batch.Result("d", error="unreadable"),
    ]
    summary = batch.summarize(results, 2.0, job_name="j", version=3, input_uri="i", output_uri="o")
    view = summary.to_dict()
    assert (view["images"], view["scored"], view["errors"]) == (4, 3, 1)
    assert view["classes"] == {"cat": 2, "dog": 1}
    assert view["images_per_second"] == 2.0
    assert view["error_entries"] == [{"name": "d", "error": "unreadable"}]


def test_results_are_read_per_input_and_a_missing_output_is_an_error_entry(
    s3: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(b"a")
    (folder / "sub" / "b.png").write_bytes(b"b")
    source = batch.locate(str(folder), BUCKET, "job", "input")
    names = batch.upload_folder(s3, folder, source)
    assert names == ["a.png", "sub/b.png"]
    assert batch.list_names(s3, source) == names
    out = batch.locate(str(tmp_path / "scores"), BUCKET, "job", "output")
    s3.put_object(Bucket=BUCKET, Key=f"{out.prefix}a.png.out",
                  Body=b'{"predictions": [{"label": "1", "top_k": []}]}')  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key=f"{out.prefix}stale.png.out", Body=b"{}")  # not an input
    results = batch.read_results(s3, out, names)
    assert [(r.name, r.label, bool(r.error)) for r in results] == [
        ("a.png", "1", False),
        ("sub/b.png", None, True),
    ]
    assert batch.download(s3, out, names, tmp_path / "scores") == 1
    assert (tmp_path / "scores" / "a.png.out").exists()


def test_an_empty_s3_prefix_is_refused(s3: Any) -> None:
    with pytest.raises(LocalMlopsError, match="nothing under s3://unit-bucket/empty/"):
        batch.list_names(s3, batch.Location(f"s3://{BUCKET}/empty/"))


def test_job_names_are_unique_and_within_sagemakers_limit() -> None:
    settings = load_settings({"project": "p" * 60})
    name = transform.job_name(settings, dt.datetime(2026, 12, 2, 1, 2, 3, 456000))
    assert name == "p" * 30 + "-transform-20261202-010203-456" and len(name) <= 63


def test_the_job_asks_the_container_for_top_k_and_error_entries() -> None:
    assert transform.transformer_environment(5) == {"MLOPS_TOP_K": "5", "MLOPS_RECORD_ERRORS": "1"}


def test_the_local_job_honours_max_concurrent_transforms() -> None:
    job = ExtendedLocalTransformJob.__new__(ExtendedLocalTransformJob)
    job.primary_container = {"Environment": {"A": "1"}}
    environment = job._get_container_environment(
        BatchStrategy="MultiRecord", MaxPayloadInMB=6, MaxConcurrentTransforms=16
    )
    assert environment["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] == "16"
    assert environment["SAGEMAKER_BATCH_STRATEGY"] == "MULTI_RECORD"
    assert environment["A"] == "1" and environment["SAGEMAKER_BATCH"] == "True"


def test_cli_refuses_an_empty_folder_before_starting_anything(tmp_path: Path) -> None:
    result = runner.invoke(app, ["transform", "--input", str(tmp_path), "--output", "o"])
    assert result.exit_code == 1
    assert "holds no files" in result.stderr and "emulator" not in result.stderr


def test_cli_names_an_unreachable_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    monkeypatch.setenv("LOCAL_MLOPS_S3_ENDPOINT", "http://127.0.0.1:9")
    result = runner.invoke(app, ["transform", "--input", str(tmp_path), "--output", "o"])
    assert result.exit_code == 1
    assert "does not answer" in result.stderr and "local-mlops up" in result.stderr


def test_cli_refuses_top_zero(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    result = runner.invoke(
        app, ["transform", "--input", str(tmp_path), "--output", "o", "--top", "0"]
    )
    assert result.exit_code == 1 and "--top 0" in result.stderr


def test_lines_are_grouped_into_payloads_within_the_limit() -> None:
    from local_mlops.targets.localmode.transform import line_payloads

    body = b"aaaa\n\nbbbb\ncccc\ndddd"  # an empty line is no record; the last has no newline
    assert line_payloads(body, 10, "k") == [b"aaaa\nbbbb\n", b"cccc\ndddd\n"]
    assert line_payloads(body, None, "k") == [b"aaaa\nbbbb\ncccc\ndddd\n"]
    with pytest.raises(RuntimeError, match="over MaxPayloadInMB"):
        line_payloads(b"x" * 20, 10, "k")


def test_a_packed_folder_round_trips_to_one_out_per_image(s3: Any, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png", "c.png"):
        (folder / name).write_bytes(name.encode())
    packed = batch.pack_folder(folder, shard_images=2)
    assert packed.names == ["a.png", "c.png", "sub/b.png"]
    assert [name for name, _ in packed.shards] == ["part-00000.jsonl", "part-00001.jsonl"]
    first = [json.loads(line) for line in packed.shards[0][1].splitlines()]
    assert [line["name"] for line in first] == ["a.png", "c.png"]
    source = batch.locate(str(folder), BUCKET, "job", "input")
    batch.upload_shards(s3, packed, source)
    job_output = batch.Location(f"s3://{BUCKET}/tmp/transform/job/packed-output/")
    answers = [
        b'{"name":"a.png","predictions":[{"label":"1","top_k":[]}]}\n'
        b'{"name":"c.png","error":"c.png is not a readable PNG","status":400}\n',
        None,  # the second shard's output is missing: its image is an error entry
    ]
    for (shard, _), body in zip(packed.shards, answers, strict=True):
        if body is not None:
            s3.put_object(Bucket=BUCKET, Key=f"{job_output.prefix}{shard}.out", Body=body)
    out = batch.locate(str(tmp_path / "scores"), BUCKET, "job", "output")
    results = batch.unpack_results(s3, packed, job_output, out)
    assert [(r.name, r.label, bool(r.error)) for r in results] == [
        ("a.png", "1", False),
        ("c.png", None, True),
        ("sub/b.png", None, True),
    ]
    written = sorted(p.relative_to(out.folder).as_posix() for p in out.folder.rglob("*.out"))
    assert written == ["a.png.out", "c.png.out"]
    assert json.loads((out.folder / "a.png.out").read_text())["predictions"][0]["label"] == "1"


def test_a_packed_folder_knows_its_longest_line(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "small.png").write_bytes(b"x")
    (folder / "large.png").write_bytes(b"y" * 900_000)  # a photo: over 1 MB once base64'd
    packed = batch.pack_folder(folder)
    assert packed.largest > 1024 * 1024 and packed.names == ["large.png", "small.png"]
