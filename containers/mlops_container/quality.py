"""The monitor's checks: drift of every baseline feature, data quality and model quality.

Each check turns into a Model Monitor violation (``feature_name``, ``constraint_check_type``,
``description``): ``baseline_drift_check`` for a drifted feature, the predicted-class
distribution or a confidence drop; ``data_type_check`` when more than
``datatype_check_threshold`` of the inputs are not readable images of an accepted content
type; ``completeness_check`` when readable inputs got error answers; ``LessThanThreshold``
(Model Monitor's ModelQuality check) when accuracy on ground truth falls below the
baseline's threshold.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .capture import IMAGE_TYPES, JSON_TYPE, UNREADABLE, WRONG_TYPE, Window
from .drift import Check, confidence_drop, numeric_drift, prediction_drift
from .features import sketch_values
from .modelfeatures import CONFIDENCE_FEATURE, PREDICTION_FEATURE


def drift_checks(
    statistics: dict[str, Any],
    config: dict[str, Any],
    columns: dict[str, np.ndarray],
    labels: list[str],
    classes: list[str],
    min_confidence_drop: float,
) -> list[Check]:
    """One KS check per numerical baseline feature, the class frequencies, the confidence."""
    threshold = float(config["distribution_constraints"]["comparison_threshold"])
    checks: list[Check] = []
    for feature in statistics["features"]:
        name = feature["name"]
        if "numerical_statistics" in feature:
            baseline = sketch_values(feature)
            window = columns.get(name, np.zeros(0))
            check = numeric_drift(name, baseline, window, threshold)
            if check is not None:
                checks.append(check)
            if name == CONFIDENCE_FEATURE:
                drop = confidence_drop(name, baseline, window, min_confidence_drop)
                if drop is not None:
                    checks.append(drop)
        elif name == PREDICTION_FEATURE:
            buckets = feature["string_statistics"]["distribution"]["categorical"]["buckets"]
            expected = {str(b["value"]): float(b["count"]) for b in buckets}
            observed = Counter(labels)
            check = prediction_drift(
                name,
                [expected.get(c, 0.0) for c in classes],
                [observed.get(c, 0) for c in classes],
                threshold,
            )
            if check is not None:
                checks.append(check)
    return checks


def data_quality_violations(window: Window, constraints: dict[str, Any]) -> list[dict[str, str]]:
    """data_type_check on the inputs and completeness_check on the answers."""
    violations = []
    config = constraints["monitoring_config"]
    items = window.items
    problems = Counter(item.problem for item in items)
    bad = problems[UNREADABLE] + problems[WRONG_TYPE]
    limit = float(config.get("datatype_check_threshold", 0.1))
    if items and bad / len(items) > limit:
        violations.append(
            {
                "feature_name": "image",
                "constraint_check_type": "data_type_check",
                "description": (
                    "Data type match requirement is not met. Expected data type: an image "
                    f"({', '.join((*IMAGE_TYPES, JSON_TYPE))}); observed: {bad} of "
                    f"{len(items)} inputs ({bad / len(items):.1%}) were unreadable "
                    f"({problems[UNREADABLE]}) or of another content type "
                    f"({problems[WRONG_TYPE]}), above datatype_check_threshold: {limit}"
                ),
            }
        )
    readable = [item for item in items if item.readable]
    answered = sum(item.answer is not None for item in readable)
    wanted = next(
        (
            float(f.get("completeness", 1.0))
            for f in constraints["features"]
            if f["name"] == PREDICTION_FEATURE
        ),
        1.0,
    )
    if readable and answered / len(readable) < wanted:
        violations.append(
            {
                "feature_name": PREDICTION_FEATURE,
                "constraint_check_type": "completeness_check",
                "description": (
                    f"Data completeness requirement is not met. Expected: {wanted:.1%}, "
                    f"observed: only {answered / len(readable):.1%} of readable inputs got a "
                    f"prediction ({len(readable) - answered} error answers)"
                ),
            }
        )
    return violations


def model_quality(
    window: Window,
    truth: dict[tuple[str, int], str],
    recomputed: dict[int, str],
    constraints: dict[str, Any] | None,
    min_labels: int,
) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """Accuracy of the endpoint's answers on labeled items, and a violation below threshold."""
    pairs = []
    for item in window.items:
        label = truth.get((item.key, item.position))
        answer = item.answer if item.answer is not None else recomputed.get(id(item))
        if label is not None and answer is not None:
            pairs.append(answer == label)
    if not pairs:
        return None, []
    accuracy = float(np.mean(pairs))
    report: dict[str, Any] = {"labeled": len(pairs), "accuracy": round(accuracy, 6)}
    if constraints is None:
        return report, []
    rule = constraints["multiclass_classification_constraints"]["accuracy"]
    threshold = float(rule["threshold"])
    report["threshold"] = threshold
    if len(pairs) < min_labels or accuracy >= threshold:
        return report, []
    return report, [
        {
            "feature_name": "accuracy",
            "metric_name": "accuracy",
            "constraint_check_type": "LessThanThreshold",
            "description": (
                f"Metric accuracy with {accuracy:.4g} was LessThanThreshold {threshold} "
                f"over {len(pairs)} labeled items (evaluation accuracy minus the margin)"
            ),
        }
    ]
