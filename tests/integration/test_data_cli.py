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


def labeled_folder(root: Path, count: int = 12) -> Path:
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
    assert "manifest-parse: line 13" in broken.output


def test_import_an_imagefolder_into_the_bucket(
    runtime_image: str, s3: tuple[Settings, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, url = s3
    monkeypatch.setenv("LOCAL_MLOPS_S3_ENDPOINT", url)
    monkeypatch.setenv("LOCAL_MLOPS_BUCKET", settings.bucket)
    source = tmp_path / "flowers"
    for name, colour in (("rose", (220, 0, 0)), ("tulip", (220, 220, 0))):
        (source / name).mkdir(parents=True)
        for i in range(6):
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
    assert len(lines) == 12
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
