"""SageMaker SDK v2 local mode, extended by subclassing to run the product's whole graph.

Imported lazily: ``from local_mlops.targets.localmode import ExtendedLocalPipelineSession`` loads the
SDK only when the session is asked for.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExtendedLocalPipelineSession"]


def __getattr__(name: str) -> Any:
    if name == "ExtendedLocalPipelineSession":
        from local_mlops.targets.localmode.session import ExtendedLocalPipelineSession

        return ExtendedLocalPipelineSession
    raise AttributeError(name)
