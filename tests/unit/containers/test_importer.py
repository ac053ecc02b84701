"""The importer: every source writes images, a Ground Truth manifest and classes.json."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import pattern_image, read_json

from mlops_container import importer

CIFAR_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def manifest_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_digits_import_writes_ground_truth_manifest(tmp_path: Path, capsys) -> None:
    out = tmp_path / "digits"
    code = importer.main(
        [
            "--dataset",
            "digits",
            "--output",
            str(out),
            "--base-uri",
            "s3://bucket/ds/digits/",
            "--per-class",
            "7",
        ]
    )
    assert code == 0
    lines = manifest_lines(out)
    assert len(lines) == 70
    assert read_json(out / "classes.json") == [str(n) for n in range(10)]
    first = lines[0]
    assert first["source-ref"] == "s3://bucket/ds/digits/images/0/digit_0000.png"
    meta = first["label-metadata"]
    assert first["label"] == 0 and meta["class-name"] == "0"
    assert meta["type"] == "groundtruth/image-classification"
    assert meta["job-name"] == "labeling-job/local-mlops-import-digits"
    assert meta["human-annotated"] == "no"
    assert (out / "images/0/digit_0000.png").is_file()
    assert "0=7 1=7" in capsys.readouterr().out


def write_cifar(folder: Path, per_batch: int = 20) -> None:
    """The official python layout: batches.meta + data_batch_1..5 + test_batch pickles."""
    folder.mkdir(parents=True)
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": [n.encode() for n in CIFAR_CLASSES]}, handle)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{n}" for n in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": [i % 10 for i in range(per_batch)],
            b"batch_label": name.encode(),
        }
        with (folder / name).open("wb") as handle:
            pickle.dump(batch, handle)


@pytest.fixture()
def cifar_dir(tmp_path: Path) -> Path:
    write_cifar(tmp_path / "src" / "cifar-10-batches-py")
    return tmp_path / "src"


def test_cifar_from_tar_gz_takes_seeded_subset(tmp_path: Path, cifar_dir: Path) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cifar_dir / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert (
            importer.main(
                [
                    "--dataset",
                    "cifar10",
                    "--source",
                    str(archive),
                    "--output",
                    str(out),
                    "--base-uri",
                    "s3://b/c",
                    "--per-class",
                    "7",
                ]
            )
            == 0
        )
        runs.append([line["source-ref"] for line in manifest_lines(out)])
    assert runs[0] == runs[1]
    assert len(runs[0]) == 70
    assert read_json(tmp_path / "a" / "classes.json") == CIFAR_CLASSES
    from PIL import Image

    with Image.open(tmp_path / "a" / runs[0][0].removeprefix("s3://b/c/")) as image:
        assert image.size == (32, 32) and image.mode == "RGB"


def test_cifar_from_extracted_dir(tmp_path: Path, cifar_dir: Path) -> None:
    out = tmp_path / "out"
    assert (
        importer.main(
            [
                "--dataset",
                "cifar10",
                "--source",
                str(cifar_dir / "cifar-10-batches-py"),
                "--output",
                str(out),
                "--base-uri",
                "/data/c",
                "--per-class",
                "7",
            ]
        )
        == 0
    )
    assert len(manifest_lines(out)) == 70
    assert manifest_lines(out)[0]["source-ref"].startswith("/data/c/images/airplane/")


def test_cifar_offline_names_the_data_flag(tmp_path: Path, monkeypatch, capsys) -> None:
    # A proxy nobody listens on makes the download fail the way it does offline.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    # urlopen keeps the opener (and so the proxy) it first builds: drop it after the test.
    monkeypatch.setattr(urllib.request, "_opener", None)
    code = importer.main(
        ["--dataset", "cifar10", "--output", str(tmp_path / "o"), "--base-uri", "s3://b/c"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "CIFAR-10 could not be downloaded (offline?)" in err and "--data PATH" in err


def test_imagefolder_one_subfolder_per_class(tmp_path: Path) -> None:
    src = tmp_path / "folder"
    for label, name in enumerate(["cat", "dog"]):
        (src / name).mkdir(parents=True)
        for i in range(7):
            pattern_image(label, i, mode="RGB").save(src / name / f"p{i}.jpg")
    out = tmp_path / "out"
    assert (
        importer.main(
            [
                "--dataset",
                "imagefolder",
                "--source",
                str(src),
                "--output",
                str(out),
                "--base-uri",
                "s3://b/pets",
            ]
        )
        == 0
    )
    lines = manifest_lines(out)
    assert [line["label"] for line in lines] == [0] * 7 + [1] * 7
    assert lines[7]["source-ref"] == "s3://b/pets/images/dog/p0.png"
    assert (out / "images/dog/p0.png").is_file()


@pytest.mark.parametrize("labels_format", ["csv", "jsonl"])
def test_unlabeled_with_labels_file_skips_unlabelled(
    tmp_path: Path, capsys, labels_format: str
) -> None:
    src = tmp_path / "flat"
    src.mkdir()
    for i in range(16):
        pattern_image(i % 2, i).save(src / f"img{i}.png")
    labelled = [(i, "even" if i % 2 == 0 else "odd") for i in range(14)]
    if labels_format == "csv":
        labels = tmp_path / "labels.csv"
        labels.write_text("filename,class\n" + "".join(f"img{i}.png,{c}\n" for i, c in labelled))
    else:
        labels = tmp_path / "labels.jsonl"
        labels.write_text(
            "".join(
                json.dumps(
                    {
                        "source-ref": f"s3://x/img{i}.png",
                        "label": 0,
                        "label-metadata": {"class-name": c},
                    }
                )
                + "\n"
                for i, c in labelled
            )
        )
    out = tmp_path / "out"
    assert (
        importer.main(
            [
                "--dataset",
                "unlabeled",
                "--source",
                str(src),
                "--labels",
                str(labels),
                "--output",
                str(out),
                "--base-uri",
                "s3://b/u",
            ]
        )
        == 0
    )
    lines = manifest_lines(out)
    assert len(lines) == 14
    assert all(line["label-metadata"]["human-annotated"] == "yes" for line in lines)
    assert read_json(out / "classes.json") == ["even", "odd"]
    assert "unlabeled (not in manifest)=2" in capsys.readouterr().out


def test_unlabeled_without_labels_is_a_clear_user_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "flat").mkdir()
    code = importer.main(
        [
            "--dataset",
            "unlabeled",
            "--source",
            str(tmp_path / "flat"),
            "--output",
            str(tmp_path / "o"),
            "--base-uri",
            "s3://b/u",
        ]
    )
    assert code == 2
    assert "needs --labels FILE" in capsys.readouterr().err


def test_corrupt_cifar_archive_is_reported(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "cifar.tar.gz"
    bad.write_bytes(io.BytesIO(b"not a tar").getvalue())
    code = importer.main(
        [
            "--dataset",
            "cifar10",
            "--source",
            str(bad),
            "--output",
            str(tmp_path / "o"),
            "--base-uri",
            "s3://b/c",
        ]
    )
    assert code == 2
    assert "not a readable CIFAR-10 tar archive" in capsys.readouterr().err
