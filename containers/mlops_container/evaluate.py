"""Evaluation processing step: test-set metrics in SageMaker's model-quality format.

Writes ``evaluation.json`` (``multiclass_classification_metrics.accuracy.value`` is what
a pipeline condition reads), ``confusion_matrix.json`` and ``confusion_matrix.png``; with
``--baseline-dir``, also the monitoring baseline of ``--validation-dir`` that
``mlops_container.baseline`` writes, from the model it already loaded (the pipeline's Evaluate
step does both: one container start, one model download and load instead of two).

The model runs as the endpoint will serve it: the artifact's ``model.onnx`` with ONNX Runtime
(``model.pt`` with PyTorch for artifacts trained before the ONNX export), and the metrics are
numpy, so the step imports neither torch nor scikit-learn (4.7 s of a cold start here).

Example::

    python3 -m mlops_container.evaluate --model-dir /opt/ml/processing/model \\
        --test-dir /opt/ml/processing/test --output-dir /opt/ml/processing/evaluation \\
        --validation-dir /opt/ml/processing/validation --baseline-dir /opt/ml/processing/baseline
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import baseline, contract
from .contract import find_file
from .errors import UserError, exit_now, run_entrypoint
from .modelfeatures import AUTO, BACKENDS, Featurizer, load_featurizer

CELL = 44
MARGIN = 90


def build_parser() -> argparse.ArgumentParser:
    """The evaluation step's command line."""
    parser = argparse.ArgumentParser(
        prog="python3 -m mlops_container.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model-dir", type=Path, default=contract.processing_path(contract.PROCESSING_MODEL)
    )
    parser.add_argument(
        "--test-dir", type=Path, default=contract.processing_path(contract.PROCESSING_TEST)
    )
    parser.add_argument(
        "--output-dir", type=Path, default=contract.processing_path(contract.PROCESSING_EVALUATION)
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=AUTO,
        help="the model's runtime: auto = ONNX Runtime when the artifact has model.onnx",
    )
    parser.add_argument(
        "--validation-dir",
        type=Path,
        default=None,
        help="with --baseline-dir: the split the monitoring baseline describes",
    )
    parser.add_argument(
        "--baseline-dir",
        type=Path,
        default=None,
        help="also write the monitoring baseline (as mlops_container.baseline does) here",
    )
    return parser


def predict(featurizer: Featurizer, images: np.ndarray) -> np.ndarray:
    """Top-1 predictions for uint8 NHWC images."""
    probabilities, _ = featurizer.run(images)
    return probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, dtype=np.int64)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    """Counts of (true row, predicted column) over ``classes`` labels."""
    pairs = np.asarray(y_true, dtype=np.int64) * classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(pairs, minlength=classes * classes).reshape(classes, classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise division that gives 0 where the denominator is 0 (scikit-learn's
    ``zero_division=0``)."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """evaluation.json: model-quality metrics, per-class scores and the confusion matrix
    (the same figures as scikit-learn's, with ``zero_division=0``; a test compares)."""
    labels = list(range(len(classes)))
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    hits = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    precision = _ratio(hits, matrix.sum(axis=0).astype(np.float64))
    recall = _ratio(hits, support.astype(np.float64))
    f1 = _ratio(2 * precision * recall, precision + recall)
    total = max(int(support.sum()), 1)
    weighted = [float((score * support).sum() / total) for score in (precision, recall, f1)]
    macro_f1 = float(np.mean(f1))

    def value(x: float) -> dict[str, Any]:
        return {"value": float(x), "standard_deviation": "NaN"}

    return {
        contract.METRICS_SECTION: {
            "accuracy": value(hits.sum() / max(len(y_true), 1)),
            "weighted_precision": value(weighted[0]),
            "weighted_recall": value(weighted[1]),
            "weighted_f1": value(weighted[2]),
            "macro_f1": value(macro_f1),
            "confusion_matrix": {
                classes[t]: {classes[p]: int(matrix[t, p]) for p in labels} for t in labels
            },
        },
        "per_class": {
            classes[i]: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in labels
        },
        "test_items": int(len(y_true)),
    }


def draw_confusion_matrix(matrix: np.ndarray, classes: list[str], path: Path) -> None:
    """A readable PNG grid: counts in cells shaded by row share, true rows, predicted columns."""
    n = len(classes)
    font = ImageFont.load_default(size=14)
    image = Image.new("RGB", (MARGIN + n * CELL + 20, MARGIN + n * CELL + 20), "white")
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, 8), "predicted (columns)", fill="black", font=font)
    draw.text((8, MARGIN - 24), "true (rows)", fill="black", font=font)
    rows = matrix.sum(axis=1, keepdims=True).clip(min=1)
    for i, name in enumerate(classes):
        short = name[:8]
        draw.text((8, MARGIN + i * CELL + CELL // 3), short, fill="black", font=font)
        draw.text(
            (MARGIN + i * CELL + 4, MARGIN - 40 + (i % 2) * 14), short, fill="black", font=font
        )
        for j in range(n):
            share = matrix[i, j] / rows[i, 0]
            shade = int(255 - 180 * share)
            box = (
                MARGIN + j * CELL,
                MARGIN + i * CELL,
                MARGIN + (j + 1) * CELL,
                MARGIN + (i + 1) * CELL,
            )
            draw.rectangle(box, fill=(shade, shade, 255), outline="gray")
            color = "white" if share > 0.6 else "black"
            draw.text(
                (box[0] + 6, box[1] + CELL // 3), str(int(matrix[i, j])), fill=color, font=font
            )
    image.save(path, format="PNG")


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Load the model and test split, write the three outputs, return evaluation.json."""
    data_file = find_file(args.test_dir, contract.DATA_FILE)
    if data_file is None:
        raise UserError(f"no {contract.DATA_FILE} in --test-dir {args.test_dir}")
    featurizer = load_featurizer(args.model_dir, args.backend)
    with np.load(data_file) as data:
        images, labels = data["images"], data["labels"]
    size = featurizer.image_size
    if images.shape[1] != size:
        raise UserError(
            f"test images are {images.shape[1]} px but the model expects "
            f"{size} px; preprocess with --image-size {size}"
        )
    classes = featurizer.classes
    predictions = predict(featurizer, images)
    report = compute_metrics(labels, predictions, classes)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    metrics = report[contract.METRICS_SECTION]
    (args.output_dir / contract.EVALUATION_FILE).write_text(json.dumps(report, indent=1) + "\n")
    (args.output_dir / contract.CONFUSION_JSON_FILE).write_text(
        json.dumps({"classes": classes, "matrix": metrics["confusion_matrix"]}, indent=1) + "\n"
    )
    matrix = confusion_matrix(labels, predictions, len(classes))
    draw_confusion_matrix(matrix, classes, args.output_dir / contract.CONFUSION_PNG_FILE)
    print(
        f"test accuracy={metrics['accuracy']['value']:.4f} "
        f"macro_f1={metrics['macro_f1']['value']:.4f} items={report['test_items']}",
        flush=True,
    )
    if args.baseline_dir is not None:
        write_step_baseline(featurizer, args, report)
    return report


def write_step_baseline(
    featurizer: Featurizer, args: argparse.Namespace, report: dict[str, Any]
) -> None:
    """The baseline step's outputs under ``--baseline-dir``, with the baseline's defaults and
    this evaluation's accuracy for the model-quality constraints."""
    validation = find_file(args.validation_dir, contract.DATA_FILE) if args.validation_dir else None
    if validation is None:
        raise UserError(
            f"--baseline-dir needs the validation split's {contract.DATA_FILE} in "
            f"--validation-dir ({args.validation_dir})"
        )
    options = baseline.build_parser().parse_args(["--output-dir", str(args.baseline_dir)])
    baseline.write_baseline(featurizer, validation, options, report)


def _job(argv: Sequence[str] | None) -> None:
    evaluate(build_parser().parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: evaluate under the failure contract (reason in output/message)."""
    return run_entrypoint(_job, argv, contract.path(contract.MESSAGE_PATH))


if __name__ == "__main__":
    exit_now(main())
