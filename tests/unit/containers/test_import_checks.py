"""The importer refuses what cannot be trained on, and names the file and the fix."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from conftest import pattern_image

from mlops_container import importer


def image_folder(root: Path, counts: dict[str, int]) -> Path:
    for label, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            pattern_image(label, i, mode="RGB").save(root / name / f"{name}{i:02d}.png")
    return root


def run_import(source: Path, out: Path, *extra: str) -> int:
    argv = ["--dataset", "imagefolder", "--source", str(source), "--output", str(out)]
    return importer.main([*argv, "--base-uri", "s3://b/f", *extra])


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_png_is_named_with_both_fixes(tmp_path: Path, capsys) -> None:
    source = image_folder(tmp_path / "pets", {"cat": 30, "dog": 30})
    truncate(source / "dog" / "dog07.png")

    code = run_import(source, tmp_path / "out")

    assert code == 2
    err = capsys.readouterr().err
    assert f"{source}/dog/dog07.png cannot be read" in err
    assert "remove it, or pass --skip-bad-images" in err
    assert "Traceback" not in err


def test_skip_bad_images_imports_the_rest_and_lists_the_skipped(tmp_path: Path, capsys) -> None:
    source = image_folder(tmp_path / "pets", {"cat": 30, "dog": 30})
    truncate(source / "dog" / "dog07.png")

    code = run_import(source, tmp_path / "out", "--skip-bad-images")

    assert code == 0
    out = capsys.readouterr().out
    assert f"skipped: {source}/dog/dog07.png:" in out
    assert "cat=30 dog=29, skipped (unreadable)=1" in out
    refs = [json.loads(line)["source-ref"] for line in (tmp_path / "out/manifest.jsonl").open()]
    assert len(refs) == 59 and not any(ref.endswith("dog07.png") for ref in refs)


def test_a_single_class_is_refused_with_its_count(tmp_path: Path, capsys) -> None:
    source = image_folder(tmp_path / "one", {"cat": 60})

    assert run_import(source, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "found 1 class (cat: 60 images); a classifier needs at least 2 classes" in err


def test_too_few_images_per_class_for_the_split_are_refused(tmp_path: Path, capsys) -> None:
    source = image_folder(tmp_path / "few", {"cat": 20, "dog": 3, "fox": 0})

    assert run_import(source, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "2 of 3 classes have fewer than 7 images (dog: 3, fox: 0)" in err
    assert "70%/15%/15% split needs 7 per class" in err


def test_a_per_class_subset_below_the_split_minimum_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["--dataset", "digits", "--output", str(out), "--base-uri", "s3://b/d"]
    assert importer.main([*argv, "--per-class", "3"]) == 2
    assert "--per-class 3 is too few" in capsys.readouterr().err


class RunsCode:
    """Unpickling this calls a function named in the pickle, as a hostile archive would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_a_cifar_pickle_that_would_run_code_is_refused(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "code-ran"
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": [b"a", b"b"], b"extra": RunsCode(marker)}, handle)
    batch = {b"data": np.zeros((20, 3072), dtype=np.uint8), b"labels": [0, 1] * 10}
    with (folder / "data_batch_1").open("wb") as handle:
        pickle.dump(batch, handle)

    argv = ["--dataset", "cifar10", "--source", str(tmp_path), "--output", str(tmp_path / "o")]
    code = importer.main([*argv, "--base-uri", "s3://b/c"])

    assert code == 2
    assert not marker.exists()
    err = capsys.readouterr().err
    assert f"{folder}/batches.meta is not a CIFAR-10 pickle, refused" in err
    assert "refers to pathlib.Path.touch" in err or "refers to pathlib" in err


def test_official_style_pickles_still_load_with_protocol_2(tmp_path: Path) -> None:
    """Python 2's cPickle wrote the official files; protocol 2 needs numpy's rebuilders."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": [b"a", b"b"]}, handle, protocol=2)
    rng = np.random.default_rng(1)
    batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": [0, 1] * 10}
    with (folder / "data_batch_1").open("wb") as handle:
        pickle.dump(batch, handle, protocol=2)

    out = tmp_path / "o"
    argv = ["--dataset", "cifar10", "--source", str(tmp_path), "--output", str(out)]
    assert importer.main([*argv, "--base-uri", "s3://b/c", "--per-class", "10"]) == 0
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 20
