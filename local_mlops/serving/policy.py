"""SageMaker's blue/green ``DeploymentConfig``, as one object both targets read.

Traffic shifting is ``ALL_AT_ONCE``, ``CANARY`` (a share, bake, then the rest) or ``LINEAR``
(equal steps, each baked); auto-rollback watches the new fleet's error rate and health during
every bake. Locally the controller does it (``serving.deploy``); in the cloud SageMaker does it
from the same numbers (``serving.cloud``), with a CloudWatch alarm standing in for the error rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from local_mlops.config import DEPLOYMENT_TRAFFIC, Settings
from local_mlops.errors import LocalMlopsError

SAGEMAKER_TYPES = {"all-at-once": "ALL_AT_ONCE", "canary": "CANARY", "linear": "LINEAR"}


@dataclass(frozen=True)
class DeploymentPolicy:
    traffic: str = "all-at-once"
    step_percent: int = 10
    bake_seconds: float = 10.0
    max_error_rate: float = 0.05
    ping_timeout: float = 120.0

    def __post_init__(self) -> None:
        if self.traffic not in DEPLOYMENT_TRAFFIC:
            raise LocalMlopsError(
                f"unknown traffic shifting {self.traffic!r}",
                f"use one of {', '.join(DEPLOYMENT_TRAFFIC)}",
            )
        if self.traffic != "all-at-once" and not 1 <= self.step_percent <= 99:
            raise LocalMlopsError(
                f"a {self.traffic} step of {self.step_percent}% is out of range",
                "use a step between 1 and 99 percent",
            )
        if self.bake_seconds < 0 or not 0 <= self.max_error_rate <= 1:
            raise LocalMlopsError(
                "bake time must be >= 0 and the error-rate limit between 0 and 1",
                "fix deployment_bake_seconds / rollback_error_rate",
            )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DeploymentPolicy:
        values: dict[str, Any] = {
            "traffic": settings.deployment_traffic,
            "step_percent": settings.deployment_step_percent,
            "bake_seconds": settings.deployment_bake_seconds,
            "max_error_rate": settings.rollback_error_rate,
            "ping_timeout": settings.endpoint_ping_timeout,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def steps(self) -> list[float]:
        """The new fleet's share of traffic after each shift (the last is always 1.0)."""
        share = self.step_percent / 100
        if self.traffic == "canary":
            return [share, 1.0]
        if self.traffic == "linear":
            count = math.ceil(1 / share)
            return [min(1.0, round(share * (n + 1), 6)) for n in range(count)]
        return [1.0]

    def describe(self) -> str:
        if self.traffic == "all-at-once":
            return f"all at once, bake {self.bake_seconds:g} s"
        return f"{self.traffic} {self.step_percent}% steps, bake {self.bake_seconds:g} s each"

    def blue_green_update_policy(self) -> dict[str, Any]:
        """SageMaker's ``BlueGreenUpdatePolicy`` with the same shifting and bake."""
        wait = max(0, min(3600, math.ceil(self.bake_seconds)))
        routing: dict[str, Any] = {
            "Type": SAGEMAKER_TYPES[self.traffic],
            "WaitIntervalInSeconds": wait,
        }
        size = {"Type": "CAPACITY_PERCENT", "Value": self.step_percent}
        if self.traffic == "canary":
            routing["CanarySize"] = size
        elif self.traffic == "linear":
            routing["LinearStepSize"] = size
        steps = len(self.steps())
        return {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": wait,
            "MaximumExecutionTimeoutInSeconds": max(600, min(28800, (steps + 1) * wait + 1800)),
        }
