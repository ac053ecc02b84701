"""The evaluation step: model-quality JSON a pipeline condition can read, and a readable PNG."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from artifacts import CLASSES, write_artifact
from conftest import read_json
from PIL import Image

from mlops_container import evaluate


def write_test_split(folder: Path, size: int = 8, count: int = 12) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(
        folder / "data.npz",
        images=rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8),
        labels=np.arange(count, dtype=np.int64) % 3,
        source_refs=np.asarray([f"s3://b/images/x/{i}.png" for i in range(count)]),
    )


def json_get(document: dict, path: str):
    """What a pipeline JsonGet does with a dotted path."""
    for key in path.split("."):
        document = document[key]
    return document


@pytest.mark.parametrize("archive", [True, False])
def test_writes_evaluation_json_and_confusion_matrix(tmp_path: Path, capsys, archive: bool) -> None:
    model_dir = write_artifact(tmp_path / "model", archive=archive)
    write_test_split(tmp_path / "test")
    out = tmp_path / "evaluation"
    assert (
        evaluate.main(
            [
                "--model-dir",
                str(model_dir),
                "--test-dir",
                str(tmp_path / "test"),
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    report = read_json(out / "evaluation.json")
    accuracy = json_get(report, "multiclass_classification_metrics.accuracy.value")
    assert 0.0 <= accuracy <= 1.0
    metrics = report["multiclass_classification_metrics"]
    assert metrics["accuracy"]["standard_deviation"] == "NaN"
    for key in ("weighted_precision", "weighted_recall", "weighted_f1", "macro_f1"):
        assert 0.0 <= metrics[key]["value"] <= 1.0
    matrix = metrics["confusion_matrix"]
    assert set(matrix) == set(CLASSES)
    assert sum(sum(row.values()) for row in matrix.values()) == 12
    assert report["test_items"] == 12
    assert set(report["per_class"]["c0"]) == {"precision", "recall", "f1", "support"}
    assert read_json(out / "confusion_matrix.json")["classes"] == CLASSES
    with Image.open(out / "confusion_matrix.png") as png:
        assert png.format == "PNG" and png.width > 150
    assert f"test accuracy={accuracy:.4f}" in capsys.readouterr().out


def test_perfect_predictions_score_one() -> None:
    labels = np.array([0, 1, 2, 2])
    report = evaluate.compute_metrics(labels, labels, CLASSES)
    assert report["multiclass_classification_metrics"]["accuracy"]["value"] == 1.0
    assert report["multiclass_classification_metrics"]["confusion_matrix"]["c2"]["c2"] == 2


def test_unsafe_archive_is_rejected(tmp_path: Path, capsys) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with tarfile.open(model_dir / "model.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    write_test_split(tmp_path / "test")
    assert (
        evaluate.main(
            [
                "--model-dir",
                str(model_dir),
                "--test-dir",
                str(tmp_path / "test"),
                "--output-dir",
                str(tmp_path / "e"),
            ]
        )
        == 2
    )
    assert "unsafe path '../escape.txt'" in capsys.readouterr().err
    assert not (tmp_path / "escape.txt").exists()


def test_image_size_mismatch_names_the_fix(tmp_path: Path, capsys) -> None:
    write_artifact(tmp_path / "model")
    write_test_split(tmp_path / "test", size=16)
    assert (
        evaluate.main(
            [
                "--model-dir",
                str(tmp_path / "model"),
                "--test-dir",
                str(tmp_path / "test"),
                "--output-dir",
                str(tmp_path / "e"),
            ]
        )
        == 2
    )
    assert "preprocess with --image-size 8" in capsys.readouterr().err


def _run(model_dir: Path, test_dir: Path, out: Path, *extra: str) -> dict:
    argv = ["--model-dir", str(model_dir), "--test-dir", str(test_dir), "--output-dir", str(out)]
    assert evaluate.main([*argv, *extra]) == 0
    return read_json(out / "evaluation.json")


def test_onnx_runtime_and_pytorch_score_the_test_split_alike(tmp_path: Path) -> None:
    """The artifact's model.onnx (what the endpoint serves) gives the report model.pt gives."""
    model_dir = write_artifact(tmp_path / "model", onnx=True)
    write_test_split(tmp_path / "test")
    onnx = _run(model_dir, tmp_path / "test", tmp_path / "onnx")
    torch = _run(model_dir, tmp_path / "test", tmp_path / "torch", "--backend", "torch")
    assert onnx == torch


def test_metrics_are_scikit_learns() -> None:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    rng = np.random.default_rng(3)
    truth, predicted = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    predicted[predicted == 2] = 1  # a class never predicted: its precision is 0, not NaN
    metrics = evaluate.compute_metrics(truth, predicted, CLASSES)
    quality = metrics["multiclass_classification_metrics"]
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=[0, 1, 2], zero_division=0
    )
    weighted = precision_recall_fscore_support(
        truth, predicted, labels=[0, 1, 2], average="weighted", zero_division=0
    )
    assert quality["accuracy"]["value"] == pytest.approx(accuracy_score(truth, predicted))
    names = ("weighted_precision", "weighted_recall", "weighted_f1")
    for key, value in zip(names, weighted[:3], strict=True):
        assert quality[key]["value"] == pytest.approx(value)
    assert quality["macro_f1"]["value"] == pytest.approx(f1.mean())
    for i, name in enumerate(CLASSES):
        scores = metrics["per_class"][name]
        assert (scores["precision"], scores["recall"], scores["f1"]) == pytest.approx(
            (precision[i], recall[i], f1[i])
        )
        assert scores["support"] == support[i]


def test_evaluation_and_baseline_steps_never_import_torch() -> None:
    """Both run the artifact's model.onnx; torch's import alone was seconds of each step."""
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
        "sys.modules['sklearn'] = None\n"
        "import mlops_container.evaluate, mlops_container.baseline\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(evaluate.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
