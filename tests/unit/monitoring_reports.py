"""Monitoring reports in the monitoring job's format (docs/monitoring.md), for the dashboard's
tests: statistics.json, constraint_violations.json and summary.json of three hourly windows."""

from __future__ import annotations

from typing import Any

ENDPOINT = "digits"
STAMPS = ("2026-12-01T20-00-00Z", "2026-12-01T21-00-00Z", "2026-12-01T22-00-00Z")


def numeric(name: str, mean: float) -> dict[str, Any]:
    return {
        "name": name,
        "inferred_type": "Fractional",
        "numerical_statistics": {"common": {"num_present": 200, "num_missing": 0}, "mean": mean},
    }


def predictions(counts: dict[str, int]) -> dict[str, Any]:
    buckets = [{"value": k, "count": v} for k, v in counts.items()]
    return {
        "name": "prediction",
        "inferred_type": "String",
        "string_statistics": {"distribution": {"categorical": {"buckets": buckets}}},
    }


def report(
    i: int, endpoint: str = ENDPOINT
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """statistics.json, constraint_violations.json, summary.json of window ``i``: brightness
    drifts more each hour; the last window also loses confidence."""
    brightness = [0.04, 0.12, 0.31][i]
    confidence = [0.97, 0.95, 0.81][i]
    counts = {"0": 60 + 40 * i, "1": 70, "2": 70 - 20 * i}
    checks = [
        {
            "feature_name": "brightness",
            "test": "ks_2samp",
            "distance": brightness,
            "threshold": 0.1,
            "p_value": 0.5 if i == 0 else 1e-6,
            "p_adjusted": 0.9 if i == 0 else 1e-5,
            "drifted": i > 0,
        },
        {
            "feature_name": "sharpness",
            "test": "ks_2samp",
            "distance": 0.05,
            "threshold": 0.1,
            "p_value": 0.7,
            "p_adjusted": 0.9,
            "drifted": False,
        },
        {
            "feature_name": "confidence",
            "test": "mannwhitneyu_less",
            "distance": 0.97 - confidence,
            "threshold": 0.05,
            "p_value": 0.4,
            "p_adjusted": 0.6,
            "drifted": i == 2,
            "baseline_mean": 0.97,
            "window_mean": confidence,
        },
    ]
    violations = [
        {
            "feature_name": c["feature_name"],
            "constraint_check_type": "baseline_drift_check",
            "description": f"Baseline drift distance: {c['distance']:.4g} exceeds threshold: "
            f"{c['threshold']}",
        }
        for c in checks
        if c["drifted"]
    ]
    quality = {"labeled": 20, "accuracy": [None, 0.95, 0.70][i], "threshold": 0.9}
    summary = {
        "endpoint": endpoint,
        "window": {"start": f"2026-12-01T{19 + i}:00:00Z", "end": f"2026-12-01T{20 + i}:00:00Z"},
        "status": "CompletedWithViolations" if violations else "Completed",
        "records": 200,
        "readable": 200,
        "violations": len(violations),
        "checks": checks,
        "prediction_counts": counts,
        "model_quality": quality if quality["accuracy"] is not None else None,
    }
    statistics = {
        "version": 0.0,
        "dataset": {"item_count": 200},
        "features": [numeric("brightness", 0.2 + brightness), numeric("confidence", confidence)]
        + [predictions(counts)],
    }
    return statistics, {"violations": violations}, summary
