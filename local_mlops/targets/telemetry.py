"""Opting out of the SageMaker SDK's telemetry without slowing every config lookup.

The SDK's ``_telemetry_emitter`` sends a request to AWS unless
``SageMaker.PythonSDK.Modules.TelemetryOptOut`` is true in the session's ``sagemaker_config``.
But any non-empty ``sagemaker_config`` makes every SDK config lookup validate it against the
SDK's full JSON schema (52-57 ms each here; 92 lookups, 4.2 s, per local run of our graph). So a
session with ``TelemetryOptOut`` mixed in shows the opt-out to the telemetry decorator alone and
its own (normally empty) config to everything else: 4 lookups, 0.23 s per run (measured; see
localmode/session.py). tests/unit/localmode/test_telemetry.py fails if the SDK stops asking
this way, and tests/cloud checks that nothing leaves the machine.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

TELEMETRY_MODULE = "sagemaker.telemetry.telemetry_logging"
TELEMETRY_OPT_OUT_CONFIG: dict[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}


def called_from_telemetry(depth: int = 5) -> bool:
    """Whether the SDK's telemetry decorator is asking (it is 2-3 frames up, via utils)."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(depth):
        if frame is None:
            return False
        if frame.f_globals.get("__name__") == TELEMETRY_MODULE:
            return True
        frame = frame.f_back
    return False


class TelemetryOptOut:
    """Mix into a SageMaker Session subclass (first in the bases) to opt out of telemetry."""

    _own_sagemaker_config: dict[str, Any] | None = None

    @property
    def sagemaker_config(self) -> dict[str, Any] | None:
        """The SDK defaults config; the telemetry decorator alone sees ``TelemetryOptOut``."""
        if called_from_telemetry():
            return TELEMETRY_OPT_OUT_CONFIG
        return self._own_sagemaker_config

    @sagemaker_config.setter
    def sagemaker_config(self, value: dict[str, Any] | None) -> None:
        self._own_sagemaker_config = value
