"""Hyperparameter search for local tuning jobs: ranges, strategies and the objective metric.

Ranges are read from a ``HyperParameterTuningJobConfig.ParameterRanges`` request exactly as the
cloud receives it. Values are handed to the training job as strings, like SageMaker does.
Strategies: ``Random`` (seeded), ``Bayesian`` (Optuna's TPE sampler through ask/tell), ``Grid``
(every combination of categorical and integer values). ``Hyperband`` falls back to ``Random``.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import threading
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ParameterRange:
    name: str
    kind: str  # "Integer" | "Continuous" | "Categorical"
    low: float = 0.0
    high: float = 0.0
    values: tuple[str, ...] = ()
    scaling: str = "Auto"  # "Auto" | "Linear" | "Logarithmic" | "ReverseLogarithmic"

    def format(self, value: Any) -> str:
        if self.kind == "Integer":
            return str(int(value))
        if self.kind == "Continuous":
            return repr(float(value))
        return str(value)


def parse_ranges(parameter_ranges: dict[str, Any]) -> list[ParameterRange]:
    """ParameterRange objects from the request's ``ParameterRanges``."""
    ranges: list[ParameterRange] = []
    for item in parameter_ranges.get("IntegerParameterRanges", []):
        ranges.append(
            ParameterRange(
                item["Name"],
                "Integer",
                float(item["MinValue"]),
                float(item["MaxValue"]),
                scaling=item.get("ScalingType", "Auto"),
            )
        )
    for item in parameter_ranges.get("ContinuousParameterRanges", []):
        ranges.append(
            ParameterRange(
                item["Name"],
                "Continuous",
                float(item["MinValue"]),
                float(item["MaxValue"]),
                scaling=item.get("ScalingType", "Auto"),
            )
        )
    for item in parameter_ranges.get("CategoricalParameterRanges", []):
        ranges.append(
            ParameterRange(item["Name"], "Categorical", values=tuple(map(str, item["Values"])))
        )
    return ranges


def _sample_numeric(rng: random.Random, r: ParameterRange) -> float:
    if r.scaling == "Logarithmic" and r.low > 0:
        value = math.exp(rng.uniform(math.log(r.low), math.log(r.high)))
    elif r.scaling == "ReverseLogarithmic" and r.high < 1:
        # Dense near 1: sample 1 - x on a log scale.
        value = 1 - math.exp(rng.uniform(math.log(1 - r.high), math.log(1 - r.low)))
    else:
        value = rng.uniform(r.low, r.high)
    if r.kind == "Integer":
        return float(min(max(round(value), math.ceil(r.low)), math.floor(r.high)))
    return min(max(value, r.low), r.high)


class Sampler(Protocol):
    def ask(self) -> tuple[Any, dict[str, str]] | None:
        """A trial token and its hyperparameters; None when the space is exhausted."""

    def tell(self, token: Any, value: float | None) -> None:
        """The trial's objective value (None when the trial failed)."""


class RandomSampler:
    def __init__(self, ranges: list[ParameterRange], seed: int | None) -> None:
        self.ranges = ranges
        self.rng = random.Random(seed)

    def ask(self) -> tuple[Any, dict[str, str]] | None:
        params = {}
        for r in self.ranges:
            value: Any = (
                self.rng.choice(r.values)
                if r.kind == "Categorical"
                else _sample_numeric(self.rng, r)
            )
            params[r.name] = r.format(value)
        return None, params

    def tell(self, token: Any, value: float | None) -> None:
        return None


class GridSampler:
    def __init__(self, ranges: list[ParameterRange]) -> None:
        axes = []
        for r in ranges:
            if r.kind == "Categorical":
                axes.append([(r.name, v) for v in r.values])
            elif r.kind == "Integer":
                axes.append([(r.name, str(v)) for v in range(int(r.low), int(r.high) + 1)])
            else:
                raise ValueError(
                    f"Grid search takes only categorical and integer ranges; {r.name!r} is "
                    "continuous"
                )
        self._grid = iter(itertools.product(*axes))

    def ask(self) -> tuple[Any, dict[str, str]] | None:
        combination = next(self._grid, None)
        return None if combination is None else (None, dict(combination))

    def tell(self, token: Any, value: float | None) -> None:
        return None


class BayesianSampler:
    """Optuna TPE through ask/tell; thread-safe so trials can finish in any order."""

    def __init__(self, ranges: list[ParameterRange], seed: int | None, maximize: bool) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.ranges = ranges
        self._optuna = optuna
        self._lock = threading.Lock()
        self.study = optuna.create_study(
            direction="maximize" if maximize else "minimize",
            sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=2),
        )

    def ask(self) -> tuple[Any, dict[str, str]] | None:
        with self._lock:
            trial = self.study.ask()
            params = {}
            for r in self.ranges:
                value: Any
                if r.kind == "Categorical":
                    value = trial.suggest_categorical(r.name, list(r.values))
                elif r.kind == "Integer":
                    value = trial.suggest_int(
                        r.name, int(r.low), int(r.high), log=r.scaling == "Logarithmic"
                    )
                else:
                    value = trial.suggest_float(
                        r.name, r.low, r.high, log=r.scaling == "Logarithmic" and r.low > 0
                    )
                params[r.name] = r.format(value)
            return trial, params

    def tell(self, token: Any, value: float | None) -> None:
        with self._lock:
            if value is None:
                self.study.tell(token, state=self._optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(token, value)


def make_sampler(
    strategy: str, ranges: list[ParameterRange], seed: int | None, maximize: bool
) -> Sampler:
    """The sampler for a tuning job's ``Strategy``."""
    if strategy == "Bayesian":
        return BayesianSampler(ranges, seed, maximize)
    if strategy == "Grid":
        return GridSampler(ranges)
    return RandomSampler(ranges, seed)


def parse_objective(log_text: str, regex: str) -> float | None:
    """The objective as SageMaker reports it: the LAST match of the metric regex in the log."""
    value = None
    for match in re.finditer(regex, log_text):
        group = match.group(1) if match.groups() else match.group(0)
        try:
            value = float(group)
        except (TypeError, ValueError):
            continue
    return value


def is_better(candidate: float, incumbent: float | None, maximize: bool) -> bool:
    if incumbent is None:
        return True
    return candidate > incumbent if maximize else candidate < incumbent
