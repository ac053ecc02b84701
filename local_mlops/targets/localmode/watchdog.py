"""Watching the S3 emulator while a local run executes.

Without it, a run whose emulator dies trains to the end and then fails in a long traceback when
the SDK uploads the model. The watchdog polls the endpoint's port once a second; after two misses
in a row it calls ``on_lost`` once (the run stops its job containers and fails with the fix).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from local_mlops.devenv.emulator import is_reachable

POLL_SECONDS = 1.0
MISSES = 2


class EmulatorWatchdog:
    """A daemon thread that calls ``on_lost`` when ``url`` stops accepting connections."""

    def __init__(
        self,
        url: str,
        on_lost: Callable[[], None],
        interval: float = POLL_SECONDS,
        misses: int = MISSES,
    ) -> None:
        self.url = url
        self.on_lost = on_lost
        self.interval = interval
        self.misses = misses
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="s3-watchdog", daemon=True)

    def _watch(self) -> None:
        missed = 0
        while not self._stop.wait(self.interval):
            missed = 0 if is_reachable(self.url, timeout=self.interval) else missed + 1
            if missed >= self.misses:
                self.lost = True
                self.on_lost()
                return

    def __enter__(self) -> EmulatorWatchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
