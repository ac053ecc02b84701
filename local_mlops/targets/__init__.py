"""The local/cloud switch, in one place.

``kind_of(settings)`` says what a target is before it is opened (where its bucket lives, what a
command checks first); ``open_target`` opens it: a ``Target`` with the session, instance types,
image URI, role, bucket and stores, and the behaviour that differs (waiting for an execution,
reading its results back). Each kind's module (``local.py``, ``cloud.py``) is imported only when
that target is used. Nothing outside this package branches on which target it is.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from local_mlops.config import Settings
from local_mlops.targets.base import (
    FAKE_CREDENTIALS,
    LOCAL_INSTANCE_TYPE,
    Outcome,
    Target,
    TargetKind,
    kind_of,
)

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

__all__ = [
    "FAKE_CREDENTIALS",
    "LOCAL_INSTANCE_TYPE",
    "Outcome",
    "Target",
    "TargetKind",
    "definition_session",
    "kind_of",
    "open_target",
]


def _module(settings: Settings) -> Any:
    return importlib.import_module(kind_of(settings).module)


def open_target(
    settings: Settings,
    s3_endpoint: str = "",
    *,
    cache_enabled: bool = True,
    on_step_event: Callable[..., None] | None = None,
) -> Target:
    """The target the settings ask for, with its session ready to build and run the graph."""
    target: Target = _module(settings).open_target(
        settings, s3_endpoint, cache_enabled, on_step_event
    )
    return target


def definition_session(settings: Settings) -> Target:
    """A target good for building and printing the definition only (no Docker, no AWS calls)."""
    target: Target = _module(settings).definition_target(settings)
    return target
