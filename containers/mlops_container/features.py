"""Per-image features and the Model Monitor DataQuality baseline built from them.

The preprocess step computes features on the original images to write the data baseline;
the Baseline step and the monitoring job compute them with :func:`array_features` on the
model's input (see ``modelfeatures``) and keep each feature's values in its KLL sketch.
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
    "aspect",
    "mean_r",
    "mean_g",
    "mean_b",
    "sharpness",
)
LABEL_FEATURE = "label"
KLL_BUCKETS = 10
# Model Monitor's KLL sketch parameters; up to k values the sketch holds every value exactly.
KLL_K = 2048
KLL_C = 0.64
LUMA = np.array([0.299, 0.587, 0.114])
MONITORING_CONFIG = {
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


def array_features(arrays: np.ndarray, sizes: Sequence[tuple[int, int]]) -> dict[str, np.ndarray]:
    """Image statistics of a uint8 N×H×W×3 batch, vectorized; ``sizes`` are the (width, height)
    of the images as received (the arrays may be resized copies)."""
    rgb = np.asarray(arrays, dtype=np.float64) / 255.0
    luminance = rgb @ LUMA
    padded = np.pad(luminance, ((0, 0), (1, 1), (1, 1)), mode="edge")
    laplacian = (
        padded[:, :-2, 1:-1]
        + padded[:, 2:, 1:-1]
        + padded[:, 1:-1, :-2]
        + padded[:, 1:-1, 2:]
        - 4.0 * luminance
    )
    size = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    return {
        "brightness": luminance.mean(axis=(1, 2)),
        "contrast": luminance.std(axis=(1, 2)),
        "width": size[:, 0],
        "height": size[:, 1],
        "aspect": size[:, 0] / np.maximum(size[:, 1], 1.0),
        "mean_r": rgb[..., 0].mean(axis=(1, 2)),
        "mean_g": rgb[..., 1].mean(axis=(1, 2)),
        "mean_b": rgb[..., 2].mean(axis=(1, 2)),
        "sharpness": laplacian.var(axis=(1, 2)),
    }


def image_features(image: Image.Image) -> dict[str, float]:
    """Brightness, contrast, size, channel means and sharpness of one image (0..1 scale)."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)[None]
    return {name: float(v[0]) for name, v in array_features(array, [image.size]).items()}


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


def kll_sketch(values: np.ndarray) -> dict[str, Any]:
    """The sketch part of a KLL distribution: every value while there are at most ``KLL_K``,
    else an evenly spaced subsample of the sorted values (each standing for the same share)."""
    ordered = np.sort(values)
    if ordered.size > KLL_K:
        ordered = ordered[np.linspace(0, ordered.size - 1, KLL_K).round().astype(int)]
    return {"parameters": {"c": KLL_C, "k": float(KLL_K)}, "data": [ordered.tolist()]}


def sketch_values(feature: dict[str, Any]) -> np.ndarray:
    """The baseline sample a feature's statistics carry (its KLL sketch's items)."""
    sketch = feature["numerical_statistics"]["distribution"]["kll"].get("sketch") or {}
    levels = sketch.get("data") or []
    return np.asarray([v for level in levels for v in level], dtype=np.float64)


def numeric_statistics(
    name: str, values: Sequence[float] | np.ndarray, num_missing: int = 0
) -> dict[str, Any]:
    """One feature's entry in statistics.json (Fractional or Integral)."""
    array = np.asarray(values, dtype=np.float64)
    integral = name in INTEGRAL_FEATURES
    numbers: dict[str, Any] = {
        "common": {"num_present": int(array.size), "num_missing": num_missing}
    }
    if array.size:
        numbers |= {
            "mean": float(array.mean()),
            "sum": float(array.sum()),
            "std_dev": float(array.std()),
            "min": float(array.min()),
            "max": float(array.max()),
            "distribution": {"kll": {"buckets": _kll_buckets(array), "sketch": kll_sketch(array)}},
        }
    return {
        "name": name,
        "inferred_type": "Integral" if integral else "Fractional",
        "numerical_statistics": numbers,
    }


def categorical_statistics(
    name: str, values: Sequence[str], num_missing: int = 0
) -> dict[str, Any]:
    """A String feature with categorical buckets (the label, or the model's predicted class)."""
    counts = Counter(values)
    return {
        "name": name,
        "inferred_type": "String",
        "string_statistics": {
            "common": {"num_present": len(values), "num_missing": num_missing},
            "distinct_count": float(len(counts)),
            "distribution": {
                "categorical": {
                    "buckets": [{"value": v, "count": c} for v, c in sorted(counts.items())]
                }
            },
        },
    }


def label_statistics(labels: Sequence[str]) -> dict[str, Any]:
    """The label distribution as a String feature with categorical buckets."""
    return categorical_statistics(LABEL_FEATURE, labels)


def build_statistics(rows: Sequence[dict[str, float]], labels: Sequence[str]) -> dict[str, Any]:
    """statistics.json in Model Monitor's DataQuality format."""
    if not rows:
        raise ValueError("no rows to compute statistics from")
    features = [numeric_statistics(n, [row[n] for row in rows]) for n in FEATURE_NAMES]
    if labels:
        features.append(label_statistics(labels))
    return {"version": 0.0, "dataset": {"item_count": len(rows)}, "features": features}


def build_constraints(statistics: dict[str, Any]) -> dict[str, Any]:
    """constraints.json suggested from the statistics (every feature complete; a number is
    non-negative when its baseline minimum is)."""
    features = []
    for feature in statistics["features"]:
        entry: dict[str, Any] = {
            "name": feature["name"],
            "inferred_type": feature["inferred_type"],
            "completeness": 1.0,
        }
        if feature["inferred_type"] != "String":
            low = feature["numerical_statistics"].get("min", 0.0)
            entry["num_constraints"] = {"is_non_negative": bool(low >= 0)}
        features.append(entry)
    return {"version": 0.0, "features": features, "monitoring_config": MONITORING_CONFIG}
