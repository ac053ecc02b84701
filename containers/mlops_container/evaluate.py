"""Evaluation processing step: test-set metrics in SageMaker's model-quality format.

Writes ``evaluation.json`` (``multiclass_classification_metrics.accuracy.value`` is what
a pipeline condition reads), ``confusion_matrix.json`` and ``confusion_matrix.png``.

Example::

    python3 -m mlops_container.evaluate --model-dir /opt/ml/processing/model \\
        --test-dir /opt/ml/processing/test --output-dir /opt/ml/processing/evaluation
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from . import contract
from .archive import model_files_dir
from .errors import UserError, exit_now, run_entrypoint
from .models import load_model
from .train import find_file

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
    return parser


@torch.inference_mode()
def predict(model: torch.nn.Module, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Top-1 predictions for uint8 NHWC images."""
    outputs = []
    for start in range(0, len(images), batch):
        chunk = torch.from_numpy(images[start : start + batch].transpose(0, 3, 1, 2).copy())
        outputs.append(model(chunk.float().div_(255)).argmax(1).numpy())
    return np.concatenate(outputs)


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """evaluation.json: model-quality metrics, per-class scores and the confusion matrix."""
    labels = list(range(len(classes)))
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    weighted = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="weighted", zero_division=0
    )
    macro_f1 = float(np.mean(f1))

    def value(x: float) -> dict[str, Any]:
        return {"value": float(x), "standard_deviation": "NaN"}

    return {
        contract.METRICS_SECTION: {
            "accuracy": value(accuracy_score(y_true, y_pred)),
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
    with tempfile.TemporaryDirectory(prefix="model-") as scratch:
        model, meta = load_model(model_files_dir(args.model_dir, Path(scratch)))
    with np.load(data_file) as data:
        images, labels = data["images"], data["labels"]
    if images.shape[1] != meta["image_size"]:
        raise UserError(
            f"test images are {images.shape[1]} px but the model expects "
            f"{meta['image_size']} px; preprocess with --image-size "
            f"{meta['image_size']}"
        )
    classes = list(meta["classes"])
    predictions = predict(model, images)
    report = compute_metrics(labels, predictions, classes)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    metrics = report[contract.METRICS_SECTION]
    (args.output_dir / contract.EVALUATION_FILE).write_text(json.dumps(report, indent=1) + "\n")
    (args.output_dir / contract.CONFUSION_JSON_FILE).write_text(
        json.dumps({"classes": classes, "matrix": metrics["confusion_matrix"]}, indent=1) + "\n"
    )
    matrix = confusion_matrix(labels, predictions, labels=list(range(len(classes))))
    draw_confusion_matrix(matrix, classes, args.output_dir / contract.CONFUSION_PNG_FILE)
    print(
        f"test accuracy={metrics['accuracy']['value']:.4f} "
        f"macro_f1={metrics['macro_f1']['value']:.4f} items={report['test_items']}",
        flush=True,
    )
    return report


def _job(argv: Sequence[str] | None) -> None:
    evaluate(build_parser().parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: evaluate under the failure contract (reason in output/message)."""
    return run_entrypoint(_job, argv, contract.path(contract.MESSAGE_PATH))


if __name__ == "__main__":
    exit_now(main())
