"""Drift decisions: Model Monitor's distance, and two-sample tests that keep false alarms rare.

Model Monitor measures a numerical feature's drift as the largest gap between the
baseline's and the window's CDFs (the Kolmogorov-Smirnov statistic) and flags it above
``comparison_threshold``. With 200 requests that distance exceeds 0.1 by chance alone for
several of ~25 features, so ``comparison_method: "Robust"`` (the default) also requires the
two-sample test to reject after a Benjamini-Hochberg correction over every check of the run;
``"Simple"`` keeps Model Monitor's distance-only rule. The predicted-class frequencies are
compared with a chi-squared test (distance: the largest frequency gap, as Model Monitor
measures categorical drift), and a drop of the mean top-1 confidence with a one-sided
Mann-Whitney U test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

ROBUST = "Robust"
SIMPLE = "Simple"
DEFAULT_ALPHA = 0.01
DEFAULT_CONFIDENCE_DROP = 0.05
# Additive smoothing of the baseline's class counts: a class the baseline never predicted
# must not make the chi-squared statistic infinite.
SMOOTHING = 0.5


@dataclass
class Check:
    """One comparison of the window with the baseline."""

    feature: str
    test: str
    distance: float
    threshold: float
    p_value: float
    p_adjusted: float = 1.0
    drifted: bool = False
    detail: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The check as it appears in the summary."""
        return {
            "feature_name": self.feature,
            "test": self.test,
            "distance": round(self.distance, 6),
            "threshold": self.threshold,
            "p_value": float(f"{self.p_value:.6g}"),
            "p_adjusted": float(f"{self.p_adjusted:.6g}"),
            "drifted": self.drifted,
            **{k: round(v, 6) for k, v in self.detail.items()},
        }


def numeric_drift(
    name: str, baseline: np.ndarray, window: np.ndarray, threshold: float
) -> Check | None:
    """KS distance and p-value of one numerical feature (None when either side is empty)."""
    if baseline.size == 0 or window.size == 0:
        return None
    # The exact distribution is slow for large samples; the asymptotic one is accurate there.
    method = "exact" if baseline.size * window.size <= 100_000 else "asymp"
    result = stats.ks_2samp(baseline, window, method=method)
    return Check(name, "ks_2samp", float(result.statistic), threshold, float(result.pvalue))


def prediction_drift(
    name: str, baseline_counts: Sequence[float], window_counts: Sequence[float], threshold: float
) -> Check | None:
    """Chi-squared test of the window's predicted-class counts against the baseline's shares."""
    observed = np.asarray(window_counts, dtype=np.float64)
    total = observed.sum()
    if total == 0:
        return None
    expected_share = np.asarray(baseline_counts, dtype=np.float64) + SMOOTHING
    expected_share /= expected_share.sum()
    result = stats.chisquare(observed, expected_share * total)
    distance = float(np.abs(observed / total - expected_share).max())
    return Check(name, "chisquare", distance, threshold, float(result.pvalue))


def confidence_drop(
    name: str, baseline: np.ndarray, window: np.ndarray, min_drop: float
) -> Check | None:
    """One-sided Mann-Whitney U: is the window's top-1 confidence lower than the baseline's?"""
    if baseline.size == 0 or window.size == 0:
        return None
    result = stats.mannwhitneyu(window, baseline, alternative="less")
    drop = float(baseline.mean() - window.mean())
    return Check(
        name,
        "mannwhitneyu_less",
        drop,
        min_drop,
        float(result.pvalue),
        detail={"baseline_mean": float(baseline.mean()), "window_mean": float(window.mean())},
    )


def decide(checks: list[Check], method: str, alpha: float) -> list[Check]:
    """Set ``p_adjusted`` (Benjamini-Hochberg over all checks) and ``drifted`` on each check."""
    if not checks:
        return checks
    adjusted = stats.false_discovery_control([c.p_value for c in checks], method="bh")
    for check, p_adjusted in zip(checks, adjusted, strict=True):
        check.p_adjusted = float(p_adjusted)
        over = check.distance > check.threshold
        check.drifted = over if method == SIMPLE else over and check.p_adjusted < alpha
    return checks


def describe(check: Check, method: str, alpha: float) -> str:
    """A violation's description, in Model Monitor's words plus the test that confirmed it."""
    if check.test == "mannwhitneyu_less":
        text = (
            f"Mean top-1 confidence dropped by {check.distance:.4g} "
            f"(baseline {check.detail['baseline_mean']:.4g}, window "
            f"{check.detail['window_mean']:.4g}), more than the allowed drop: {check.threshold}"
        )
    else:
        text = f"Baseline drift distance: {check.distance:.4g} exceeds threshold: {check.threshold}"
    if method == SIMPLE:
        return text
    return (
        f"{text} ({check.test} p={check.p_value:.3g}, Benjamini-Hochberg adjusted "
        f"{check.p_adjusted:.3g} < alpha {alpha})"
    )
