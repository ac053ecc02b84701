"""Baseline processing step: what the monitor compares captured traffic with.

Runs the trained model on the validation split and writes, under ``--output-dir``:
``statistics.json`` and ``constraints.json`` in Model Monitor's DataQuality layout (image
statistics, class probabilities, top-1 confidence, principal components of the embedding,
and the predicted class as a String feature), ``embedding_basis.json`` (the PCA basis the
monitor projects captured images on) and, given the evaluation, ``model_quality_constraints.json``
(accuracy threshold = the evaluation's accuracy minus ``--accuracy-margin``).

Example::

    python3 -m mlops_container.baseline --model-dir /opt/ml/processing/model \\
        --validation-dir /opt/ml/processing/validation \\
        --evaluation-dir /opt/ml/processing/evaluation --output-dir /opt/ml/processing/baseline
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import contract
from .contract import find_file
from .errors import UserError, exit_now, run_entrypoint
from .features import build_constraints, categorical_statistics, numeric_statistics
from .modelfeatures import (
    AUTO,
    BACKENDS,
    DEFAULT_COMPONENTS,
    PREDICTION_FEATURE,
    Featurizer,
    add_components,
    array_batches,
    feature_table,
    fit_basis,
    load_featurizer,
    numeric_feature_names,
)

DEFAULT_MARGIN = 0.05
DEFAULT_THRESHOLD = 0.1


def build_parser() -> argparse.ArgumentParser:
    """The baseline step's command line."""
    parser = argparse.ArgumentParser(
        prog="python3 -m mlops_container.baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model-dir", type=Path, default=contract.processing_path(contract.PROCESSING_MODEL)
    )
    parser.add_argument(
        "--validation-dir",
        type=Path,
        default=contract.processing_path(contract.PROCESSING_VALIDATION),
    )
    parser.add_argument("--evaluation-dir", type=Path, default=None)
    parser.add_argument(
        "--output-dir", type=Path, default=contract.processing_path(contract.PROCESSING_BASELINE)
    )
    parser.add_argument("--components", type=int, default=DEFAULT_COMPONENTS)
    parser.add_argument("--accuracy-margin", type=float, default=DEFAULT_MARGIN)
    parser.add_argument("--comparison-threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=AUTO,
        help="the model's runtime: auto = ONNX Runtime when the artifact has model.onnx",
    )
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Reject settings that cannot make a baseline."""
    if not 1 <= args.components <= 64:
        raise UserError(f"--components must be in [1, 64], got {args.components}")
    if not 0 <= args.accuracy_margin < 1:
        raise UserError(f"--accuracy-margin must be in [0, 1), got {args.accuracy_margin}")
    if not 0 < args.comparison_threshold <= 1:
        raise UserError(
            f"--comparison-threshold must be in (0, 1], got {args.comparison_threshold}"
        )


def model_quality_constraints(evaluation: dict[str, Any], margin: float) -> dict[str, Any]:
    """Model Monitor's ModelQuality constraints: accuracy below (evaluation - margin) violates."""
    try:
        accuracy = float(evaluation["multiclass_classification_metrics"]["accuracy"]["value"])
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(
            "evaluation.json has no multiclass_classification_metrics.accuracy.value; "
            "pass the Evaluate step's output as --evaluation-dir"
        ) from error
    return {
        "version": 0.0,
        "multiclass_classification_constraints": {
            "accuracy": {
                "threshold": round(max(0.0, accuracy - margin), 6),
                "comparison_operator": "LessThanThreshold",
            }
        },
        "evaluation_accuracy": accuracy,
        "margin": margin,
    }


def write_json(path: Path, value: object) -> None:
    """Write pretty JSON, creating the parent directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")


def baseline(args: argparse.Namespace) -> dict[str, Any]:
    """Compute the features of the validation split and write the baseline; return statistics."""
    check_args(args)
    data_file = find_file(args.validation_dir, contract.DATA_FILE)
    if data_file is None:
        raise UserError(f"no {contract.DATA_FILE} in --validation-dir {args.validation_dir}")
    featurizer = load_featurizer(args.model_dir, args.backend)
    evaluation = None
    if args.evaluation_dir is not None:
        evaluation_file = find_file(args.evaluation_dir, contract.EVALUATION_FILE)
        if evaluation_file is None:
            raise UserError(f"no {contract.EVALUATION_FILE} in --evaluation-dir")
        evaluation = json.loads(evaluation_file.read_text())
    return write_baseline(featurizer, data_file, args, evaluation)


def write_baseline(
    featurizer: Featurizer,
    data_file: Path,
    args: argparse.Namespace,
    evaluation: dict[str, Any] | None,
) -> dict[str, Any]:
    """The baseline of the validation split in ``data_file`` under ``args.output_dir`` (and the
    model-quality constraints, given the evaluation); return statistics. The Evaluate step calls
    it with the model it already loaded."""
    with np.load(data_file) as data:
        images = data["images"]
    if len(images) < 2:
        raise UserError(f"the validation split has {len(images)} images; a baseline needs >= 2")
    if images.shape[1] != featurizer.image_size:
        raise UserError(
            f"validation images are {images.shape[1]} px but the model expects "
            f"{featurizer.image_size} px; pass the same preprocess output the model trained on"
        )
    columns, predicted, embeddings = feature_table(featurizer, array_batches(images), None)
    basis = fit_basis(embeddings, args.components)
    add_components(columns, basis, embeddings)
    names = numeric_feature_names(featurizer.classes, basis.components.shape[0])
    features = [numeric_statistics(name, columns[name]) for name in names]
    features.append(
        categorical_statistics(PREDICTION_FEATURE, [featurizer.classes[i] for i in predicted])
    )
    statistics = {"version": 0.0, "dataset": {"item_count": len(images)}, "features": features}
    constraints = build_constraints(statistics)
    distribution = constraints["monitoring_config"]["distribution_constraints"]
    constraints["monitoring_config"] = {
        **constraints["monitoring_config"],
        "distribution_constraints": {
            **distribution,
            "comparison_threshold": args.comparison_threshold,
        },
    }
    out = args.output_dir
    write_json(out / contract.STATISTICS_FILE, statistics)
    write_json(out / contract.CONSTRAINTS_FILE, constraints)
    write_json(out / contract.BASIS_FILE, basis.to_json())
    if evaluation is not None:
        write_json(
            out / contract.MODEL_QUALITY_CONSTRAINTS_FILE,
            model_quality_constraints(evaluation, args.accuracy_margin),
        )
    explained = float(basis.explained_variance_ratio.sum())
    print(
        f"baseline items={len(images)} features={len(features)} "
        f"components={basis.components.shape[0]} explained_variance={explained:.3f}",
        flush=True,
    )
    return statistics


def _job(argv: Sequence[str] | None) -> None:
    baseline(build_parser().parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the baseline under the failure contract (reason in output/message)."""
    return run_entrypoint(_job, argv, contract.path(contract.MESSAGE_PATH))


if __name__ == "__main__":
    exit_now(main())
