"""What every model registry and run history offers, local (in the bucket) or SageMaker's.

The CLI, the runner and the targets talk to these Protocols, never to one implementation.
"""

from __future__ import annotations

from typing import Any, Protocol


class ModelRegistry(Protocol):
    """Model package groups and their versions, shaped as SageMaker's Describe* calls return them."""

    def list_groups(self) -> list[dict[str, Any]]: ...

    def list_packages(self, group: str) -> list[dict[str, Any]]: ...

    def describe(self, arn_or_group_version: str) -> dict[str, Any]: ...

    def update_approval(
        self, arn_or_group_version: str, status: str, description: str | None = None
    ) -> dict[str, Any]: ...


class RunHistory(Protocol):
    """Pipeline executions with their steps, as one record each."""

    def list(self) -> list[dict[str, Any]]: ...

    def get(self, execution_id: str) -> dict[str, Any]: ...
