"""Per-image features and the Model Monitor DataQuality baseline built from them.

The preprocess step computes features on the original images to write the baseline;
the monitoring step reuses :func:`image_features` on captured traffic and compares.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

INTEGRAL_FEATURES = ("width", "height")
FEATURE_NAMES = (
    "brightness",
    "contrast",
    "width",
    "height",
    "mean_r",
    "mean_g",
    "mean_b",
    "sharpness",
)
LABEL_FEATURE = "label"
KLL_BUCKETS = 10
MONITORING_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
    },
}


def image_features(image: Image.Image) -> dict[str, float]:
    """Brightness, contrast, size, channel means and sharpness of one image (0..1 scale)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    luminance = rgb @ np.array([0.299, 0.587, 0.114])
    padded = np.pad(luminance, 1, mode="edge")
    laplacian = (
        padded[:-2, 1:-1]
        + padded[2:, 1:-1]
        + padded[1:-1, :-2]
        + padded[1:-1, 2:]
        - 4.0 * luminance
    )
    return {
        "brightness": float(luminance.mean()),
        "contrast": float(luminance.std()),
        "width": float(image.width),
        "height": float(image.height),
        "mean_r": float(rgb[..., 0].mean()),
        "mean_g": float(rgb[..., 1].mean()),
        "mean_b": float(rgb[..., 2].mean()),
        "sharpness": float(laplacian.var()),
    }


def _kll_buckets(values: np.ndarray) -> list[dict[str, float]]:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return [{"lower_bound": low, "upper_bound": high, "count": float(values.size)}]
    counts, edges = np.histogram(values, bins=KLL_BUCKETS, range=(low, high))
    return [
        {
            "lower_bound": float(edges[i]),
            "upper_bound": float(edges[i + 1]),
            "count": float(counts[i]),
        }
        for i in range(len(counts))
    ]


def numeric_statistics(name: str, values: Sequence[float]) -> dict[str, Any]:
    """One feature's entry in statistics.json (Fractional or Integral)."""
    array = np.asarray(values, dtype=np.float64)
    integral = name in INTEGRAL_FEATURES
    return {
        "name": name,
        "inferred_type": "Integral" if integral else "Fractional",
        "numerical_statistics": {
            "common": {"num_present": int(array.size), "num_missing": 0},
            "mean": float(array.mean()),
            "sum": float(array.sum()),
            "std_dev": float(array.std()),
            "min": float(array.min()),
            "max": float(array.max()),
            "distribution": {"kll": {"buckets": _kll_buckets(array)}},
        },
    }


def label_statistics(labels: Sequence[str]) -> dict[str, Any]:
    """The label distribution as a String feature with categorical buckets."""
    counts = Counter(labels)
    return {
        "name": LABEL_FEATURE,
        "inferred_type": "String",
        "string_statistics": {
            "common": {"num_present": len(labels), "num_missing": 0},
            "distinct_count": float(len(counts)),
            "distribution": {
                "categorical": {
                    "buckets": [{"value": v, "count": c} for v, c in sorted(counts.items())]
                }
            },
        },
    }


def build_statistics(rows: Sequence[dict[str, float]], labels: Sequence[str]) -> dict[str, Any]:
    """statistics.json in Model Monitor's DataQuality format."""
    if not rows:
        raise ValueError("no rows to compute statistics from")
    features = [numeric_statistics(n, [row[n] for row in rows]) for n in FEATURE_NAMES]
    if labels:
        features.append(label_statistics(labels))
    return {"version": 0.0, "dataset": {"item_count": len(rows)}, "features": features}


def build_constraints(statistics: dict[str, Any]) -> dict[str, Any]:
    """constraints.json suggested from the statistics (all features complete, numbers >= 0)."""
    features = []
    for feature in statistics["features"]:
        entry: dict[str, Any] = {
            "name": feature["name"],
            "inferred_type": feature["inferred_type"],
            "completeness": 1.0,
        }
        if feature["inferred_type"] != "String":
            entry["num_constraints"] = {"is_non_negative": True}
        features.append(entry)
    return {"version": 0.0, "features": features, "monitoring_config": MONITORING_CONFIG}
