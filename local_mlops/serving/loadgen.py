"""Loopback HTTP load on an endpoint URL: ``post`` (one request, also what ``traffic`` sends)
and ``SteadyLoad`` (tests and benchmarks).

``SteadyLoad``'s threads POST the same body in a loop, each pausing ``pause`` seconds between
requests, until stopped or ``max_seconds`` have passed; it counts answers, failures and what the
answers said.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

# Loopback traffic never goes through a proxy the environment may name.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def check_local(url: str) -> str:
    """``url`` when it is on this machine; ValueError otherwise (load never leaves it)."""
    if not url.startswith(("http://127.", "http://localhost")):
        raise ValueError(f"load goes to this machine only, not {url}")
    return url


def post(
    url: str,
    body: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> bytes:
    """One POST to a loopback URL; the answer's body (urllib's errors on failure)."""
    request = urllib.request.Request(
        check_local(url), data=body, headers={"Content-Type": content_type, **(headers or {})}
    )
    with _DIRECT.open(request, timeout=timeout) as reply:
        return bytes(reply.read())


class SteadyLoad:
    def __init__(
        self,
        url: str,
        body: bytes,
        content_type: str = "image/png",
        threads: int = 2,
        pause: float = 0.0,
        max_seconds: float = 60.0,
        read: Callable[[bytes], object] | None = None,
    ) -> None:
        check_local(url)
        self.url, self.body, self.content_type = url, body, content_type
        self.pause, self.max_seconds, self.read = pause, max_seconds, read
        self.ok = 0
        self.failures: list[str] = []
        self.answers: list[object] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.wait(self.pause) and time.monotonic() < deadline:
            try:
                data = post(self.url, self.body, self.content_type)
                with self._lock:
                    self.ok += 1
                    if self.read:
                        self.answers.append(self.read(data))
            except (urllib.error.URLError, OSError) as exc:
                with self._lock:
                    self.failures.append(repr(exc))

    def finish(self) -> SteadyLoad:
        """Stop the threads and wait for their last requests."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        return self
