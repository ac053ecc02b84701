"""`data import` and `data validate` as a user runs them, in the runtime image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from local_mlops.cli.app import app
from local_mlops.config import Settings
from local_mlops.s3 import s3_client

pytestmark = pytest.mark.docker
runner = CliRunner()
CLASSES = ["red", "green"]


def labeled_folder(root: Path, count: int = 14) -> Path:
    """A folder as `local-mlops label` leaves it: images, manifest.jsonl with relative refs."""
    root.mkdir()
    lines = []
    for i in range(count):
        label = i % 2
        name = f"img{i}.png"
        Image.new("RGB", (16, 16), (200 * (1 - label), 200 * label, i * 10)).save(root / name)
        metadata = {
            "class-name": CLASSES[label],
            "confidence": 1.0,
            "human-annotated": "yes",
            "type": "groundtruth/image-classification",
            "creation-date": "2026-11-28T11:00:00",
            "job-name": "labeling-job/test",
        }
        lines.append(json.dumps({"source-ref": name, "label": label, "label-metadata": metadata}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (root / "classes.json").write_text(json.dumps(CLASSES))
    return root


def test_validate_passes_a_labeled_folder_and_names_a_broken_line(
    runtime_image: str, tmp_path: Path
) -> None:
    folder = labeled_folder(tmp_path / "labeled")
    ok = runner.invoke(app, ["data", "validate", str(folder), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["status"] == "passed"

    with (folder / "manifest.jsonl").open("a") as manifest:
        manifest.write("not json\n")
    broken = runner.invoke(app, ["data", "validate", str(folder)])
    assert broken.exit_code == 1
    assert "manifest-parse: line 15" in broken.output


def test_import_an_imagefolder_into_the_bucket(
    runtime_image: str, s3: tuple[Settings, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, url = s3
    monkeypatch.setenv("LOCAL_MLOPS_S3_ENDPOINT", url)
    monkeypatch.setenv("LOCAL_MLOPS_BUCKET", settings.bucket)
    source = tmp_path / "flowers"
    for name, colour in (("rose", (220, 0, 0)), ("tulip", (220, 220, 0))):
        (source / name).mkdir(parents=True)
        for i in range(7):
            Image.new("RGB", (20, 20), (colour[0], colour[1], i * 20)).save(
                source / name / f"{i}.jpg"
            )

    result = runner.invoke(
        app, ["data", "import", "imagefolder", "--data", str(source), "--name", "flowers"]
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"s3://{settings.bucket}/datasets/flowers/"
    body = s3_client(settings, url).get_object(
        Bucket=settings.bucket, Key="datasets/flowers/manifest.jsonl"
    )
    lines = [json.loads(line) for line in body["Body"].read().decode().splitlines()]
    assert len(lines) == 14
    assert {line["label-metadata"]["class-name"] for line in lines} == {"rose", "tulip"}
    assert all(
        line["source-ref"].startswith(f"s3://{settings.bucket}/datasets/flowers/images/")
        for line in lines
    )


def test_import_of_a_missing_path_is_one_clear_error(
    runtime_image: str, s3: tuple[Settings, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, url = s3
    monkeypatch.setenv("LOCAL_MLOPS_S3_ENDPOINT", url)
    result = runner.invoke(
        app, ["data", "import", "cifar10", "--data", str(tmp_path / "nope.tar.gz")]
    )
    assert result.exit_code == 1
    assert "does not exist" in result.output and "fix:" in result.output


def pets(root: Path, counts: dict[str, int]) -> Path:
    for label, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (16, 16), (200 * label, 90, i * 8)).save(root / name / f"{i:02d}.png")
    return root


@pytest.fixture()
def bucket_env(s3: tuple[Settings, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings, url = s3
    monkeypatch.setenv("LOCAL_MLOPS_S3_ENDPOINT", url)
    monkeypatch.setenv("LOCAL_MLOPS_BUCKET", settings.bucket)
    return settings


def test_a_truncated_png_is_named_by_the_users_path_and_can_be_skipped(
    runtime_image: str, bucket_env: Settings, tmp_path: Path
) -> None:
    source = pets(tmp_path / "pets", {"cat": 30, "dog": 30})
    bad = source / "dog" / "07.png"
    bad.write_bytes(bad.read_bytes()[:60])
    command = ["data", "import", "imagefolder", "--data", str(source), "--name", "pets"]

    refused = runner.invoke(app, command)

    assert refused.exit_code == 1
    assert f"error: the import failed: {bad} cannot be read" in refused.output
    assert "remove it, or pass --skip-bad-images" in refused.output
    assert "/data/source" not in refused.output

    skipped = runner.invoke(app, [*command, "--skip-bad-images"])

    assert skipped.exit_code == 0, skipped.output
    said = " ".join(skipped.output.split())  # rich wraps long lines
    assert f"Skipped an unreadable image: {bad}:" in said
    assert "cat=30 dog=29, skipped (unreadable)=1" in said


def test_an_empty_folder_is_reported_by_the_users_path(
    runtime_image: str, bucket_env: Settings, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    result = runner.invoke(app, ["data", "import", "imagefolder", "--data", str(empty)])

    assert result.exit_code == 1
    assert f"error: the import failed: {empty} has no class subfolders" in result.output
    assert "/data/source" not in result.output


def test_a_single_class_folder_is_refused_before_anything_trains(
    runtime_image: str, bucket_env: Settings, tmp_path: Path
) -> None:
    source = pets(tmp_path / "cats", {"cat": 12})

    result = runner.invoke(
        app, ["run", "--dataset", "imagefolder", "--data", str(source), "--epochs", "1"]
    )

    assert result.exit_code == 1
    assert "found 1 class (cat: 12 images); a classifier needs at least 2 classes" in result.output
    assert "Succeeded" not in result.output
