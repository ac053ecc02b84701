"""Unit tests (no Docker): sampling, objective parsing, retry classification, cache keys."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from local_mlops.targets.localmode import hyperparameters as hp
from local_mlops.targets.localmode.cache import cache_key, parse_duration
from local_mlops.targets.localmode.executors import flatten_metrics
from local_mlops.targets.localmode.retry import (
    CAPACITY_ERROR,
    JOB_INTERNAL_ERROR,
    SERVICE_FAULT,
    Failure,
    RetryRule,
    classify_failure,
    next_retry_delay,
)

RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "lr", "MinValue": "0.001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}
    ],
    "IntegerParameterRanges": [{"Name": "depth", "MinValue": "1", "MaxValue": "5"}],
    "CategoricalParameterRanges": [{"Name": "opt", "Values": ["sgd", "adam"]}],
}


def test_random_sampling_is_seeded_and_in_range() -> None:
    ranges = hp.parse_ranges(RANGES)
    first = [hp.RandomSampler(ranges, 3).ask() for _ in range(1)]
    again = [hp.RandomSampler(ranges, 3).ask() for _ in range(1)]
    assert first == again
    sampler = hp.RandomSampler(ranges, 1)
    logs = []
    for _ in range(200):
        _, params = sampler.ask()  # type: ignore[misc]
        assert 0.001 <= float(params["lr"]) <= 0.1
        assert params["depth"] in {"1", "2", "3", "4", "5"}
        assert params["opt"] in {"sgd", "adam"}
        logs.append(math.log10(float(params["lr"])))
    # Log scaling: about half the samples below 0.01 (the geometric midpoint).
    assert 70 < sum(1 for v in logs if v < -2) < 130


def test_grid_enumerates_combinations_and_rejects_continuous() -> None:
    ranges = hp.parse_ranges({k: v for k, v in RANGES.items() if "Continuous" not in k})
    sampler = hp.GridSampler(ranges)
    seen = []
    while (asked := sampler.ask()) is not None:
        seen.append(asked[1])
    assert len(seen) == 10
    with pytest.raises(ValueError):
        hp.GridSampler(hp.parse_ranges(RANGES))


def test_bayesian_search_homes_in_on_the_best_region_and_survives_failed_trials() -> None:
    """What a user of --strategy Bayesian expects: trials move towards the best learning rate
    (here 0.01, the peak of the objective), values stay in range, a failed trial is skipped."""

    def objective(params: dict[str, str]) -> float:
        return -((math.log10(float(params["lr"])) + 2) ** 2)

    sampler = hp.make_sampler("Bayesian", hp.parse_ranges(RANGES), seed=0, maximize=True)
    failed_token, _ = sampler.ask()  # type: ignore[misc]
    sampler.tell(failed_token, None)
    scores = []
    for _ in range(16):
        token, params = sampler.ask()  # type: ignore[misc]
        assert 0.001 <= float(params["lr"]) <= 0.1 and params["opt"] in {"sgd", "adam"}
        scores.append(objective(params))
        sampler.tell(token, scores[-1])
    assert max(scores) > -0.05  # a trial within ~0.2 decades of lr = 0.01
    assert sum(scores[8:]) / 8 > sum(scores[:4]) / 4  # later trials do better than the first
    study = sampler.study  # type: ignore[attr-defined]
    assert [t.state.name for t in study.trials].count("FAIL") == 1


def test_objective_is_last_match() -> None:
    log = "epoch=0 val_accuracy=0.1\nval_accuracy=0.5\nnoise\nval_accuracy=0.93\n"
    assert hp.parse_objective(log, r"val_accuracy=([0-9.]+)") == 0.93
    assert hp.parse_objective("nothing", r"val_accuracy=([0-9.]+)") is None
    assert hp.is_better(0.2, 0.3, maximize=False) and not hp.is_better(0.2, 0.3, maximize=True)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (Failure("RuntimeError: Process exited with code: 137", exit_code=137), JOB_INTERNAL_ERROR),
        (Failure("killed", exit_code=1, oom_killed=True), JOB_INTERNAL_ERROR),
        (Failure("RuntimeError: exited with code: 1", exit_code=1), None),
        (Failure("RuntimeError: exited with code: 2", exit_code=2), None),
        (Failure("Cannot connect to the Docker daemon", container_started=False), CAPACITY_ERROR),
        (Failure("compose failed", exit_code=None, container_started=False), CAPACITY_ERROR),
        (Failure("EndpointConnectionError: Could not connect to the endpoint URL"), SERVICE_FAULT),
    ],
)
def test_classify_failure(failure: Failure, expected: str | None) -> None:
    assert classify_failure(failure) == expected


def test_retry_policy_semantics() -> None:
    start = dt.datetime.now(dt.UTC)
    rule = RetryRule.from_request(
        {
            "ExceptionType": [JOB_INTERNAL_ERROR],
            "MaxAttempts": 3,
            "IntervalSeconds": 2,
            "BackoffRate": 3,
        }
    )
    assert next_retry_delay([rule], JOB_INTERNAL_ERROR, 1, start) == 2
    assert next_retry_delay([rule], JOB_INTERNAL_ERROR, 2, start) == 6
    assert next_retry_delay([rule], JOB_INTERNAL_ERROR, 3, start) is None
    assert next_retry_delay([rule], None, 1, start) is None
    assert next_retry_delay([rule], SERVICE_FAULT, 1, start) is None
    expiring = RetryRule.from_request({"ExceptionType": [SERVICE_FAULT], "ExpireAfterMin": 1})
    later = start + dt.timedelta(minutes=2)
    assert next_retry_delay([expiring], SERVICE_FAULT, 5, start, now=start) == 16  # 1 * 2**4
    assert next_retry_delay([expiring], SERVICE_FAULT, 5, start, now=later) is None


def test_cache_key_stability() -> None:
    args = {"TrainingJobName": "a-1", "HyperParameters": {"lr": "0.1"}, "Input": "s3://b/x"}
    same = {"Input": "s3://b/x", "HyperParameters": {"lr": "0.1"}, "TrainingJobName": "a-2"}
    changed = {**args, "HyperParameters": {"lr": "0.2"}}
    assert cache_key("p", "Train", "Training", args) == cache_key("p", "Train", "Training", same)
    assert cache_key("p", "Train", "Training", args) != cache_key("p", "Train", "Training", changed)
    assert cache_key("p", "Train", "Training", args) != cache_key("p", "Other", "Training", args)


def test_parse_duration() -> None:
    assert parse_duration("P30D") == dt.timedelta(days=30)
    assert parse_duration("PT1H30M") == dt.timedelta(hours=1, minutes=30)
    assert parse_duration("P2W") == dt.timedelta(weeks=2)
    with pytest.raises(ValueError):
        parse_duration("30 days")


def test_flatten_metrics() -> None:
    report = {"metrics": {"accuracy": {"value": 0.9}, "loss": {"value": 0.1}}, "n": 5}
    assert flatten_metrics(report) == {"accuracy": 0.9, "loss": 0.1, "n": 5.0}
