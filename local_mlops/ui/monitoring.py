"""The Monitoring pages: the monitoring job's reports, read where it writes them.

``s3://BUCKET/monitoring/ENDPOINT/TIMESTAMP/`` holds, per run of the job (docs/monitoring.md):
``statistics.json`` (the window, Model Monitor's layout), ``constraint_violations.json``
(``violations[]``) and ``summary.json`` (every check with its distance and threshold, counts,
predicted-class counts, model quality). TIMESTAMP is the window's end, ``2026-12-01T20-00-00Z``.
The baseline is the model version's ``DriftCheckBaselines`` statistics.json.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any

from local_mlops.ui.charts import Series, bar_chart, line_chart

PREFIX = "monitoring"
STATISTICS, VIOLATIONS, SUMMARY = "statistics.json", "constraint_violations.json", "summary.json"
PREDICTION, CONFIDENCE = "prediction", "confidence"
DRIFT_LINES = 6  # features drawn on the drift chart: the most drifted ones


@dataclass
class Report:
    """One run of the monitoring job."""

    endpoint: str
    stamp: str
    summary: dict[str, Any] = field(default_factory=dict)
    violations: list[dict[str, Any]] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def time(self) -> dt.datetime | None:
        try:
            return dt.datetime.strptime(self.stamp, "%Y-%m-%dT%H-%M-%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            return None

    @property
    def x(self) -> float:
        return self.time.timestamp() if self.time else 0.0

    @property
    def uri_folder(self) -> str:
        return f"{PREFIX}/{self.endpoint}/{self.stamp}/"

    def checks(self) -> list[dict[str, Any]]:
        return [c for c in self.summary.get("checks") or [] if isinstance(c, dict)]

    def confidence(self) -> float | None:
        """The window's mean top-1 confidence: statistics.json, else the summary's check."""
        feature = _feature(self.statistics, CONFIDENCE)
        mean = ((feature or {}).get("numerical_statistics") or {}).get("mean")
        if isinstance(mean, int | float):
            return float(mean)
        for check in self.checks():
            if check.get("feature_name") == CONFIDENCE and "window_mean" in check:
                return float(check["window_mean"])
        return None

    def predictions(self) -> dict[str, float]:
        """Predicted-class counts of the window."""
        counts = self.summary.get("prediction_counts")
        if isinstance(counts, dict) and counts:
            return {str(k): float(v) for k, v in counts.items()}
        return categorical_counts(self.statistics, PREDICTION)


def _feature(statistics: dict[str, Any], name: str) -> dict[str, Any] | None:
    for feature in statistics.get("features") or []:
        if isinstance(feature, dict) and feature.get("name") == name:
            return feature
    return None


def categorical_counts(statistics: dict[str, Any], name: str) -> dict[str, float]:
    """A String feature's categorical buckets as {value: count}."""
    feature = _feature(statistics, name) or {}
    buckets = (
        ((feature.get("string_statistics") or {}).get("distribution") or {}).get("categorical")
        or {}
    ).get("buckets") or []
    return {str(b.get("value")): float(b.get("count", 0)) for b in buckets}


def endpoints_with_reports(cache: Any) -> list[str]:
    return sorted(cache.folders(f"{PREFIX}/"))


def reports(cache: Any, endpoint: str) -> list[Report]:
    """Every report of ``endpoint``, oldest first (statistics.json only for the newest).

    A report's files never change once the job has written them (each run writes a new
    TIMESTAMP folder), so one listing of the folders finds new reports and each file is fetched
    once (``written_documents``): a warm page costs one LIST call.
    """
    prefix = f"{PREFIX}/{endpoint}/"
    ordered = [Report(endpoint, stamp) for stamp in sorted(cache.folders(prefix))]
    keys = [f"{r.uri_folder}{name}" for r in ordered for name in (SUMMARY, VIOLATIONS)]
    if ordered:  # window statistics are large: only the newest is read
        keys.append(f"{ordered[-1].uri_folder}{STATISTICS}")
    docs = cache.written_documents(keys)
    for report in ordered:
        report.summary = dict(docs.get(f"{report.uri_folder}{SUMMARY}") or {})
        violations = docs.get(f"{report.uri_folder}{VIOLATIONS}") or {}
        report.violations = [v for v in violations.get("violations") or [] if isinstance(v, dict)]
    if ordered:
        ordered[-1].statistics = dict(docs.get(f"{ordered[-1].uri_folder}{STATISTICS}") or {})
    return ordered


def drift_chart(items: list[Report]) -> str:
    """The drift distance of the most drifted features per report, against the threshold."""
    by_feature: dict[str, list[tuple[float, float]]] = {}
    thresholds = set()
    for report in items:
        for check in report.checks():
            if check.get("test") == "mannwhitneyu_less":  # a drop in confidence: its own chart
                continue
            by_feature.setdefault(str(check.get("feature_name")), []).append(
                (report.x, float(check.get("distance", 0.0)))
            )
            thresholds.add(float(check.get("threshold", 0.1)))
    ranked = sorted(by_feature, key=lambda f: -max(d for _, d in by_feature[f]))[:DRIFT_LINES]
    threshold = max(thresholds) if thresholds else 0.1
    return line_chart(
        [Series(name, by_feature[name]) for name in ranked],
        title=f"drift distance per report (the {len(ranked)} most drifted features)",
        x_label="window end (UTC)",
        y_label="distance (max CDF gap)",
        y_range=(0.0, max(1.0, threshold)),
        threshold=(threshold, f"threshold {threshold:g}"),
        x_time=True,
    )


def prediction_chart(latest: Report | None, baseline: dict[str, Any]) -> str:
    """The latest window's predicted-class shares beside the baseline's."""
    window = latest.predictions() if latest else {}
    base = categorical_counts(baseline, PREDICTION)
    classes = sorted(set(window) | set(base), key=lambda c: (not c.isdigit(), c.zfill(6)))
    series = []
    for label, counts in (("baseline", base), ("latest window", window)):
        total = sum(counts.values())
        if total:
            series.append((label, [counts.get(c, 0.0) / total for c in classes]))
    return bar_chart(
        classes,
        series,
        title="predicted classes: latest window against the baseline",
        x_label="predicted class",
        y_label="share of predictions",
    )


def fraction_over_time(
    points: list[tuple[float, float]],
    title: str,
    label: str,
    unit: str,
    line: str,
    value: Any,
    span: tuple[float, float] | None = None,
) -> str:
    """A 0..1 figure per report, with a labelled reference line at ``value`` when it is known."""
    known = isinstance(value, int | float)
    return line_chart(
        [Series(label, points)],
        title=title,
        x_label="window end (UTC)",
        y_label=unit,
        y_range=(0.0, 1.0),
        threshold=(float(value), line.format(float(value))) if known else None,
        x_time=True,
        x_range=span,
    )


def confidence_chart(items: list[Report], baseline: dict[str, Any]) -> str:
    points = [(r.x, c) for r in items if (c := r.confidence()) is not None]
    base = _feature(baseline, CONFIDENCE)
    mean = ((base or {}).get("numerical_statistics") or {}).get("mean")
    return fraction_over_time(
        points,
        "confidence per report",
        "mean top-1 confidence",
        "mean top-1 probability",
        "baseline {:.3f}",
        mean,
    )


def accuracy_chart(items: list[Report]) -> str | None:
    """Accuracy on labeled captures per report; None when no report had ground truth."""
    points, threshold = [], None
    for report in items:
        quality = report.summary.get("model_quality") or {}
        if isinstance(quality.get("accuracy"), int | float):
            points.append((report.x, float(quality["accuracy"])))
            threshold = quality.get("threshold", threshold)
    if not points:
        return None
    return fraction_over_time(
        points,
        "accuracy where ground truth exists",
        "accuracy on labeled captures",
        "accuracy (fraction)",
        "threshold {:g}",
        threshold,
        (items[0].x, items[-1].x),  # the same time axis as the other charts
    )


def page_context(items: list[Report], baseline: dict[str, Any]) -> dict[str, Any]:
    latest = items[-1] if items else None
    return {
        "reports": items[::-1],
        "latest": latest,
        "drift_svg": drift_chart(items),
        "prediction_svg": prediction_chart(latest, baseline),
        "confidence_svg": confidence_chart(items, baseline),
        "accuracy_svg": accuracy_chart(items),
        "has_baseline": bool(baseline),
    }
