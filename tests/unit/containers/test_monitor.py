"""Baseline and monitoring job on a tiny trained model: formats, drift, data and model quality."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from artifacts import CLASSES, write_artifact, write_trained_artifact
from conftest import make_dataset, read_json

from local_mlops.monitoring.records import capture_record, ground_truth_record
from local_mlops.monitoring.shifts import png_bytes, shifted_sample
from mlops_container import baseline, evaluate, monitor, preprocess
from mlops_container.modelfeatures import array_batches, feature_table, load_featurizer

T0 = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dataset -> preprocess -> a briefly fitted resnet18 -> evaluate -> baseline, once."""
    root = tmp_path_factory.mktemp("monitoring")
    make_dataset(root / "ds", per_class=60)
    splits = ["--val-fraction", "0.25", "--test-fraction", "0.25", "--image-size", "8"]
    args = ["--input-dir", str(root / "ds"), "--output-dir", str(root / "prep"), *splits]
    assert preprocess.main(args) == 0
    with np.load(root / "prep/train/data.npz") as data:
        write_trained_artifact(root / "model", data["images"], data["labels"], CLASSES, onnx=True)
    assert evaluate.main(
        ["--model-dir", str(root / "model"), "--test-dir", str(root / "prep/test"),
         "--output-dir", str(root / "evaluation")]
    ) == 0  # fmt: skip
    assert baseline.main(
        ["--model-dir", str(root / "model"), "--validation-dir", str(root / "prep/validation"),
         "--evaluation-dir", str(root / "evaluation"), "--output-dir", str(root / "baseline")]
    ) == 0  # fmt: skip
    return root


def load_test_split(trained: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(trained / "prep/test/data.npz") as data:
        return data["images"], data["labels"]


def write_capture(folder: Path, images: np.ndarray, start: datetime = T0) -> list[str]:
    """One capture file of PNG requests with plausible answers; returns the event ids."""
    folder.mkdir(parents=True, exist_ok=True)
    lines, ids = [], []
    for number, image in enumerate(images):
        event = f"event-{start:%H%M}-{number}"
        answer = {"predictions": [{"label": "c0", "index": 0, "probabilities": {}}]}
        record = capture_record(
            png_bytes(image), answer, start + timedelta(seconds=number), inference_id=event
        )
        lines.append(json.dumps(record))
        ids.append(event)
    (folder / f"{start:%H-%M}.jsonl").write_text("\n".join(lines) + "\n")
    return ids


def run_monitor(trained: Path, capture: Path, out: Path, *extra: str) -> dict:
    argv = ["--capture-dir", str(capture), "--baseline-dir", str(trained / "baseline"),
            "--model-dir", str(trained / "model"), "--output-dir", str(out), *extra]  # fmt: skip
    assert monitor.main(argv) == 0
    return read_json(out / "summary.json")


def test_the_evaluate_step_writes_the_baseline_the_baseline_job_writes(
    trained: Path, tmp_path: Path
) -> None:
    """The pipeline's Evaluate step writes the baseline too, from the model it loaded once."""
    out = tmp_path / "step"
    assert evaluate.main(
        ["--model-dir", str(trained / "model"), "--test-dir", str(trained / "prep/test"),
         "--output-dir", str(out / "evaluation"),
         "--validation-dir", str(trained / "prep/validation"),
         "--baseline-dir", str(out / "baseline")]
    ) == 0  # fmt: skip
    assert read_json(out / "evaluation/evaluation.json") == read_json(
        trained / "evaluation/evaluation.json"
    )
    for name in ("statistics.json", "constraints.json", "embedding_basis.json",
                 "model_quality_constraints.json"):  # fmt: skip
        assert read_json(out / "baseline" / name) == read_json(trained / "baseline" / name)


def test_the_evaluate_step_names_a_missing_validation_split(
    trained: Path, tmp_path: Path, capsys
) -> None:
    assert evaluate.main(
        ["--model-dir", str(trained / "model"), "--test-dir", str(trained / "prep/test"),
         "--output-dir", str(tmp_path / "evaluation"), "--baseline-dir", str(tmp_path / "b")]
    ) == 2  # fmt: skip
    assert "--baseline-dir needs the validation split's data.npz" in capsys.readouterr().err


def test_baseline_writes_model_monitor_layout(trained: Path) -> None:
    statistics = read_json(trained / "baseline/statistics.json")
    assert statistics["version"] == 0.0 and statistics["dataset"]["item_count"] == 45
    by_name = {f["name"]: f for f in statistics["features"]}
    expected = {"brightness", "contrast", "sharpness", "width", "height", "aspect", "mean_r"}
    expected |= {"prob_c0", "prob_c1", "prob_c2", "confidence", "embedding_pc1", "prediction"}
    assert expected <= set(by_name)
    numbers = by_name["confidence"]["numerical_statistics"]
    assert set(numbers) == {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    kll = numbers["distribution"]["kll"]
    assert sum(b["count"] for b in kll["buckets"]) == 45 and len(kll["sketch"]["data"][0]) == 45
    constraints = read_json(trained / "baseline/constraints.json")
    assert constraints["monitoring_config"] == {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": 0.1,
        "domain_content_threshold": 0.1,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": 0.1,
            "comparison_method": "Robust",
        },
    }
    pcs = {f["name"]: f for f in constraints["features"]}["embedding_pc1"]
    assert pcs["num_constraints"] == {"is_non_negative": False}
    accuracy = read_json(trained / "evaluation/evaluation.json")[
        "multiclass_classification_metrics"
    ]["accuracy"]["value"]
    quality = read_json(trained / "baseline/model_quality_constraints.json")
    rule = quality["multiclass_classification_constraints"]["accuracy"]
    assert rule == {
        "threshold": round(accuracy - 0.05, 6),
        "comparison_operator": "LessThanThreshold",
    }
    assert len(read_json(trained / "baseline/embedding_basis.json")["components"]) == 5


def test_clean_traffic_has_no_violation(trained: Path, tmp_path: Path) -> None:
    images, _ = load_test_split(trained)
    write_capture(tmp_path / "capture", images)
    summary = run_monitor(trained, tmp_path / "capture", tmp_path / "out")
    assert summary["status"] == "Completed" and summary["readable"] == len(images)
    assert summary["backend"] == "onnxruntime"  # the artifact has model.onnx
    assert read_json(tmp_path / "out/constraint_violations.json") == {"violations": []}
    statistics = read_json(tmp_path / "out/statistics.json")
    assert statistics["dataset"]["item_count"] == len(images)


def test_brightened_traffic_names_the_features_that_moved(trained: Path, tmp_path: Path) -> None:
    images, labels = load_test_split(trained)
    shifted, _ = shifted_sample(images, labels, 60, "brightness", 0.3, np.random.default_rng(1))
    write_capture(tmp_path / "capture", shifted)
    summary = run_monitor(trained, tmp_path / "capture", tmp_path / "out")
    violations = read_json(tmp_path / "out/constraint_violations.json")["violations"]
    drifted = {v["feature_name"] for v in violations}
    assert {"brightness", "mean_r"} <= drifted and "width" not in drifted
    brightness = next(v for v in violations if v["feature_name"] == "brightness")
    assert brightness["constraint_check_type"] == "baseline_drift_check"
    assert "exceeds threshold: 0.1" in brightness["description"]
    assert summary["status"] == "CompletedWithViolations"


def test_bad_inputs_and_error_answers_are_data_quality_violations(
    trained: Path, tmp_path: Path
) -> None:
    images, _ = load_test_split(trained)
    write_capture(tmp_path / "capture", images[:20])
    bad = [
        capture_record(b"not an image", None, T0, "image/png"),
        capture_record(b"a,b,c", None, T0, "text/csv"),
        capture_record(b"\x89PNG broken", None, T0, "image/png"),
        capture_record(png_bytes(images[0]), {"error": "boom"}, T0, "image/png"),
    ]
    (tmp_path / "capture/bad.jsonl").write_text("\n".join(json.dumps(r) for r in bad) + "\n")
    summary = run_monitor(trained, tmp_path / "capture", tmp_path / "out")
    assert (summary["unreadable"], summary["wrong_content_type"], summary["error_answers"]) == (
        2,
        1,
        1,
    )
    checks = {
        v["constraint_check_type"]: v
        for v in read_json(tmp_path / "out/constraint_violations.json")["violations"]
    }
    assert checks["data_type_check"]["feature_name"] == "image"
    assert "3 of 24 inputs" in checks["data_type_check"]["description"]
    assert checks["completeness_check"]["feature_name"] == "prediction"


def test_ground_truth_below_threshold_is_a_model_quality_violation(
    trained: Path, tmp_path: Path
) -> None:
    images, labels = load_test_split(trained)
    ids = write_capture(tmp_path / "capture", images)  # every answer says c0
    truth = tmp_path / "truth"
    truth.mkdir()
    rows = [ground_truth_record(i, f"c{label}") for i, label in zip(ids, labels, strict=True)]
    (truth / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    summary = run_monitor(
        trained, tmp_path / "capture", tmp_path / "out", "--ground-truth-dir", str(truth)
    )
    assert summary["model_quality"]["labeled"] == len(images)
    assert summary["model_quality"]["accuracy"] == pytest.approx(np.mean(labels == 0))
    violation = next(
        v
        for v in read_json(tmp_path / "out/constraint_violations.json")["violations"]
        if v["feature_name"] == "accuracy"
    )
    assert violation["constraint_check_type"] == "LessThanThreshold"
    assert violation["description"].startswith("Metric accuracy with 0.33")


def test_window_selects_records_by_inference_time(trained: Path, tmp_path: Path) -> None:
    images, _ = load_test_split(trained)
    write_capture(tmp_path / "capture", images[:10], T0)
    write_capture(tmp_path / "capture", images[:7], T0 + timedelta(hours=1))
    start, end = "2026-12-01T21:00:00Z", "2026-12-01T22:00:00Z"
    summary = run_monitor(
        trained, tmp_path / "capture", tmp_path / "out", "--start", start, "--end", end
    )
    assert (summary["records"], summary["out_of_window"]) == (7, 10)


def test_empty_window_and_bad_arguments(trained: Path, tmp_path: Path, capsys) -> None:
    summary = run_monitor(trained, tmp_path / "nothing", tmp_path / "out")
    assert summary["records"] == 0 and summary["status"] == "Completed"
    argv = ["--capture-dir", str(tmp_path), "--baseline-dir", str(trained / "baseline"),
            "--model-dir", str(trained / "model"), "--start", "yesterday"]  # fmt: skip
    assert monitor.main(argv) == 2
    assert "--start 'yesterday' is not an ISO-8601 time" in capsys.readouterr().err
    assert monitor.main(["--baseline-dir", str(tmp_path)]) == 2
    assert "run the Evaluate step (or mlops_container.baseline) first" in capsys.readouterr().err


def test_onnx_runtime_and_pytorch_give_the_same_report(trained: Path, tmp_path: Path) -> None:
    """The report does not depend on the runtime: an artifact without model.onnx (trained
    before the export) is monitored with PyTorch against the same baseline."""
    images, labels = load_test_split(trained)
    shifted, _ = shifted_sample(images, labels, 60, "contrast", 0.5, np.random.default_rng(2))
    write_capture(tmp_path / "capture", shifted)
    reports = {}
    for backend in ("auto", "torch"):
        summary = run_monitor(
            trained, tmp_path / "capture", tmp_path / backend, "--backend", backend
        )
        reports[summary["backend"]] = summary, read_json(tmp_path / backend / "statistics.json")
    (onnx_summary, onnx_stats), (torch_summary, torch_stats) = reports.values()
    assert list(reports) == ["onnxruntime", "torch"]
    assert onnx_summary["violated_features"] == torch_summary["violated_features"]
    assert onnx_summary["prediction_counts"] == torch_summary["prediction_counts"]
    for ours, theirs in zip(onnx_summary["checks"], torch_summary["checks"], strict=True):
        assert ours["distance"] == pytest.approx(theirs["distance"], abs=1e-4)
    for ours, theirs in zip(onnx_stats["features"], torch_stats["features"], strict=True):
        if "numerical_statistics" in ours:
            mean = theirs["numerical_statistics"]["mean"]
            assert ours["numerical_statistics"]["mean"] == pytest.approx(mean, abs=1e-4)


def test_mobilenet_embedding_is_read_from_the_onnx_head(tmp_path: Path) -> None:
    """The head's input of a mobilenet (classifier.3) comes out of model.onnx as PyTorch's."""
    write_artifact(tmp_path / "model", image_size=16, onnx=True)
    arrays = np.random.default_rng(0).integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)
    tables = [
        feature_table(load_featurizer(tmp_path / "model", backend), array_batches(arrays), None)
        for backend in ("onnx", "torch")
    ]
    (onnx_columns, onnx_predicted, onnx_embeddings), (columns, predicted, embeddings) = tables
    assert onnx_embeddings.shape == embeddings.shape == (20, 1024)
    np.testing.assert_allclose(onnx_embeddings, embeddings, atol=1e-4)
    np.testing.assert_allclose(onnx_columns["confidence"], columns["confidence"], atol=1e-5)
    assert (onnx_predicted == predicted).all()
