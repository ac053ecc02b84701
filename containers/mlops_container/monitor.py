"""Monitoring processing job: one time window of captured requests against the baseline.

Reads the capture files under ``--capture-dir`` (optionally ground truth under
``--ground-truth-dir``), recomputes the baseline's features with the same model and PCA
basis, and writes under ``--output-dir``: ``statistics.json`` (the window, Model Monitor's
layout), ``constraint_violations.json`` (``violations[]`` with ``feature_name``,
``constraint_check_type`` and ``description``) and ``summary.json`` (every check with its
distance, threshold and p-values; counts; model quality). Violations are findings, not
failures: the job exits 0 with them.

Example::

    python3 -m mlops_container.monitor --capture-dir /opt/ml/processing/input/capture \\
        --baseline-dir /opt/ml/processing/baseline --model-dir /opt/ml/processing/model \\
        --output-dir /opt/ml/processing/output --start 2026-12-01T20:00:00Z --end 2026-12-01T21:00:00Z
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from . import contract
from .capture import (
    UNREADABLE,
    WRONG_TYPE,
    Window,
    image_batches,
    parse_time,
    read_ground_truth,
    read_window,
)
from .drift import (
    DEFAULT_ALPHA,
    DEFAULT_CONFIDENCE_DROP,
    ROBUST,
    Check,
    decide,
    describe,
)
from .errors import UserError, exit_now, run_entrypoint
from .features import categorical_statistics, numeric_statistics
from .modelfeatures import (
    AUTO,
    BACKENDS,
    BATCH,
    PREDICTION_FEATURE,
    Basis,
    feature_table,
    load_featurizer,
)
from .quality import data_quality_violations, drift_checks, model_quality

DEFAULT_MIN_LABELS = 10


def build_parser() -> argparse.ArgumentParser:
    """The monitoring job's command line."""
    parser = argparse.ArgumentParser(
        prog="python3 -m mlops_container.monitor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = contract.processing_path
    parser.add_argument("--capture-dir", type=Path, default=where(contract.PROCESSING_CAPTURE))
    parser.add_argument(
        "--ground-truth-dir", type=Path, default=where(contract.PROCESSING_GROUND_TRUTH)
    )
    parser.add_argument("--baseline-dir", type=Path, default=where(contract.PROCESSING_BASELINE))
    parser.add_argument("--model-dir", type=Path, default=where(contract.PROCESSING_MODEL))
    parser.add_argument(
        "--output-dir", type=Path, default=where(contract.PROCESSING_MONITOR_OUTPUT)
    )
    parser.add_argument("--start", default=None, help="window start, ISO-8601 (inclusive)")
    parser.add_argument("--end", default=None, help="window end, ISO-8601 (exclusive)")
    parser.add_argument(
        "--window-seconds", type=int, default=None, help="without --start: start = end - this"
    )
    parser.add_argument("--endpoint", default="", help="endpoint name, for the summary")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--confidence-drop", type=float, default=DEFAULT_CONFIDENCE_DROP)
    parser.add_argument("--min-labels", type=int, default=DEFAULT_MIN_LABELS)
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=AUTO,
        help="the model's runtime: auto = ONNX Runtime when the artifact has model.onnx",
    )
    return parser


def window_bounds(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    """The parsed ``--start``/``--end``; a clear error for an unreadable or empty window."""
    bounds = []
    for flag, value in (("--start", args.start), ("--end", args.end)):
        parsed = parse_time(value)
        if value and parsed is None:
            raise UserError(f"{flag} {value!r} is not an ISO-8601 time (2026-12-01T20:00:00Z)")
        bounds.append(parsed)
    start, end = bounds
    if args.window_seconds is not None:  # a scheduled run knows only its time and its window
        if args.window_seconds <= 0 or end is None or start is not None:
            raise UserError("--window-seconds needs --end, no --start, and a positive number")
        start = end - timedelta(seconds=args.window_seconds)
        args.start = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    if start and end and start >= end:
        raise UserError(f"--start {args.start} must be before --end {args.end}")
    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha must be in (0, 1), got {args.alpha}")
    return start, end


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A baseline file, or an error naming the step that writes it."""
    if not path.is_file():
        raise UserError(
            f"no {path.name} in --baseline-dir ({what}); run the Evaluate step (or mlops_container.baseline) first"
        )
    value = json.loads(path.read_text())
    if not isinstance(value, dict):
        raise UserError(f"{path} is not a JSON object")
    return value


def write_json(path: Path, value: object) -> None:
    """Write pretty JSON, creating the parent directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")


def window_statistics(
    columns: dict[str, np.ndarray], names: list[str], labels: list[str], missing: int
) -> dict[str, Any]:
    """statistics.json of the window, in the baseline's feature order."""
    features = [numeric_statistics(n, columns.get(n, np.zeros(0)), missing) for n in names]
    features.append(categorical_statistics(PREDICTION_FEATURE, labels, missing))
    return {"version": 0.0, "dataset": {"item_count": len(labels) + missing}, "features": features}


def counts(window: Window) -> dict[str, int]:
    """How many records and items the window held, and what was wrong with them."""
    problems = Counter(item.problem for item in window.items)
    readable = [item for item in window.items if item.readable]
    return {
        "records": window.records,
        "items": len(window.items),
        "readable": len(readable),
        "unreadable": problems[UNREADABLE],
        "wrong_content_type": problems[WRONG_TYPE],
        "error_answers": sum(item.answer is None for item in readable),
        "bad_lines": window.bad_lines,
        "out_of_window": window.skipped_out_of_window,
    }


def monitor(args: argparse.Namespace) -> dict[str, Any]:
    """Run the checks for one window, write the three outputs and return the summary."""
    started = time.perf_counter()
    start, end = window_bounds(args)
    statistics = read_json(args.baseline_dir / contract.STATISTICS_FILE, "statistics")
    constraints = read_json(args.baseline_dir / contract.CONSTRAINTS_FILE, "constraints")
    basis = Basis.from_json(read_json(args.baseline_dir / contract.BASIS_FILE, "PCA basis"))
    quality_path = args.baseline_dir / contract.MODEL_QUALITY_CONSTRAINTS_FILE
    quality = read_json(quality_path, "model quality") if quality_path.is_file() else None
    featurizer = load_featurizer(args.model_dir, args.backend)
    window = read_window(args.capture_dir, start, end)
    batches = image_batches(window.items, featurizer.image_size, BATCH)
    columns, predicted, _ = feature_table(featurizer, batches, basis)
    readable = [item for item in window.items if item.readable]  # those that decoded
    labels = [featurizer.classes[i] for i in predicted]
    names = [f["name"] for f in statistics["features"] if "numerical_statistics" in f]
    config = constraints["monitoring_config"]
    method = config["distribution_constraints"].get("comparison_method", ROBUST)
    checks: list[Check] = decide(
        drift_checks(statistics, config, columns, labels, featurizer.classes, args.confidence_drop),
        method,
        args.alpha,
    )
    violations = [
        {
            "feature_name": c.feature,
            "constraint_check_type": "baseline_drift_check",
            "description": describe(c, method, args.alpha),
        }
        for c in checks
        if c.drifted
    ]
    violations += data_quality_violations(window, constraints)
    truth = read_ground_truth(args.ground_truth_dir)
    recomputed = dict(zip((id(item) for item in readable), labels, strict=True))
    quality_report, quality_violations = model_quality(
        window, truth, recomputed, quality, args.min_labels
    )
    violations += quality_violations
    write_json(
        args.output_dir / contract.STATISTICS_FILE,
        window_statistics(columns, names, labels, len(window.items) - len(readable)),
    )
    write_json(args.output_dir / contract.VIOLATIONS_FILE, {"violations": violations})
    summary = {
        "endpoint": args.endpoint,
        "window": {"start": args.start, "end": args.end},
        "status": "CompletedWithViolations" if violations else "Completed",
        **counts(window),
        "violations": len(violations),
        "violated_features": sorted({v["feature_name"] for v in violations}),
        "comparison_method": method,
        "alpha": args.alpha,
        "checks": [c.to_json() for c in checks],
        "prediction_counts": dict(sorted(Counter(labels).items())),
        "model_quality": quality_report,
        "backend": featurizer.backend,
        "duration_seconds": round(time.perf_counter() - started, 3),
    }
    write_json(args.output_dir / contract.SUMMARY_FILE, summary)
    print(
        f"monitor records={summary['records']} readable={summary['readable']} "
        f"violations={len(violations)} features={','.join(summary['violated_features']) or '-'}",
        flush=True,
    )
    return summary


def _job(argv: Sequence[str] | None) -> None:
    monitor(build_parser().parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the monitoring job under the failure contract (reason in output/message)."""
    return run_entrypoint(_job, argv, contract.path(contract.MESSAGE_PATH))


if __name__ == "__main__":
    exit_now(main())
