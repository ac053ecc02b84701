"""Step retries with SageMaker ``RetryPolicy`` semantics, and which failures count as transient.

SageMaker retries a step only when its failure maps to an exception type listed in one of the
step's retry policies (``Step.SERVICE_FAULT``, ``Step.THROTTLING``,
``SageMaker.JOB_INTERNAL_ERROR``, ``SageMaker.CAPACITY_ERROR``, ``SageMaker.RESOURCE_LIMIT``).
Locally the same failure classes
exist under other names: the Docker engine or Compose failing to start a container is a capacity
error, a container killed by a signal (exit 137/143, OOM) is an internal error, and a dropped
connection to the S3 emulator is a service fault. A script that exits 1 or 2 is deterministic and
never retried.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from local_mlops.targets.localmode.cache import step_request

SERVICE_FAULT = "Step.SERVICE_FAULT"
THROTTLING = "Step.THROTTLING"
JOB_INTERNAL_ERROR = "SageMaker.JOB_INTERNAL_ERROR"
CAPACITY_ERROR = "SageMaker.CAPACITY_ERROR"
RESOURCE_LIMIT = "SageMaker.RESOURCE_LIMIT"

# Exit codes a shell or Docker reports for a process killed by SIGKILL (OOM killer, `docker
# kill`), SIGTERM and SIGSEGV/SIGBUS-free signals: 128 + signal number.
_SIGNAL_EXIT_MIN = 129

_S3_CONNECTION = re.compile(
    r"EndpointConnectionError|ConnectionClosedError|ReadTimeoutError|ConnectTimeoutError"
    r"|Could not connect to the endpoint URL|Connection reset by peer|Connection refused",
)
_DOCKER_START = re.compile(
    r"Cannot connect to the Docker daemon|Error response from daemon|error while creating mount"
    r"|Couldn't connect to Docker daemon|failed to create network|No such image"
    r"|Docker Compose is not installed|OCI runtime create failed",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Failure:
    """What went wrong in one attempt of a step, as far as retries care."""

    message: str
    exit_code: int | None = None  # the container's exit code; None when no container ran
    oom_killed: bool = False
    container_started: bool = True


def classify_failure(failure: Failure) -> str | None:
    """The SageMaker retry exception type a failure maps to, or None when it is deterministic."""
    if failure.oom_killed:
        return JOB_INTERNAL_ERROR
    if failure.exit_code is not None and failure.exit_code >= _SIGNAL_EXIT_MIN:
        return JOB_INTERNAL_ERROR
    if _S3_CONNECTION.search(failure.message):
        return SERVICE_FAULT
    if not failure.container_started or _DOCKER_START.search(failure.message):
        return CAPACITY_ERROR
    return None


@dataclass(frozen=True)
class RetryRule:
    """One step retry policy, as found in the pipeline definition's ``RetryPolicies``."""

    exception_types: frozenset[str]
    max_attempts: int | None
    interval_seconds: float
    backoff_rate: float
    expire_after_mins: float | None

    @classmethod
    def from_request(cls, request: dict[str, Any]) -> RetryRule:
        max_attempts = request.get("MaxAttempts")
        return cls(
            exception_types=frozenset(request.get("ExceptionType", [])),
            max_attempts=int(max_attempts) if max_attempts is not None else None,
            interval_seconds=float(request.get("IntervalSeconds", 1)),
            backoff_rate=float(request.get("BackoffRate", 2.0)),
            expire_after_mins=(
                float(request["ExpireAfterMin"]) if request.get("ExpireAfterMin") else None
            ),
        )


def retry_rules(step: Any) -> list[RetryRule]:
    """The retry policies of a step (empty for steps that cannot carry any)."""
    return [RetryRule.from_request(p) for p in step_request(step).get("RetryPolicies", [])]


def next_retry_delay(
    rules: list[RetryRule],
    exception_type: str | None,
    attempt: int,
    first_started: dt.datetime,
    now: dt.datetime | None = None,
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None when the step must not retry.

    ``attempt`` counts from 1. ``MaxAttempts`` is the total number of attempts; ``ExpireAfterMin``
    bounds the time since the first attempt started. The interval grows by ``BackoffRate`` per
    retry. The first policy that lists the failure's exception type and still allows a retry wins.
    """
    if exception_type is None:
        return None
    now = now or dt.datetime.now(dt.UTC)
    for rule in rules:
        if exception_type not in rule.exception_types:
            continue
        if rule.max_attempts is not None and attempt >= rule.max_attempts:
            continue
        if rule.expire_after_mins is not None:
            elapsed_mins = (now - first_started).total_seconds() / 60
            if elapsed_mins >= rule.expire_after_mins:
                continue
        return rule.interval_seconds * rule.backoff_rate ** (attempt - 1)
    return None
