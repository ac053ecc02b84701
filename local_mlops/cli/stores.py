"""Opening the target's run history and model registry for one command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from local_mlops.cli.common import say
from local_mlops.config import Settings
from local_mlops.devenv.emulator import s3_endpoint
from local_mlops.targets import Target, open_target


@contextmanager
def opened_target(settings: Settings) -> Iterator[Target]:
    """The target with its stores; locally, what a killed command left is reconciled first."""
    with s3_endpoint(settings, announce=say) as endpoint:
        target = open_target(settings, endpoint.url)
        target.reconcile(say)
        yield target
