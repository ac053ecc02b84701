"""What the router measures over time: requests, errors and latency per fleet, in 10 s buckets.

SageMaker reports ``Invocations``, ``Invocation5XXErrors`` and ``ModelLatency`` to CloudWatch
per variant each minute; the local router keeps the same figures in memory, per endpoint,
variant and fleet (a fleet is one model version's containers), in ``BUCKET_SECONDS`` buckets
for the last ``KEEP_BUCKETS`` of them (an hour). Latency goes into a fixed histogram with
geometric bounds, so a bucket costs a few hundred bytes whatever the traffic and percentiles
are read back within one bound's width (~19%). Nothing is written to disk: a restarted router
starts a new timeline. ``GET /_local-mlops/metrics`` returns ``snapshot()``.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

BUCKET_SECONDS = 10
KEEP_BUCKETS = 360
# 0.5 ms to ~70 s, each bound 1.19x the previous one; the last slot counts what is above.
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(round(0.5 * 1.19**i, 3) for i in range(69))


class Timeline:
    """Per (endpoint, variant, fleet): buckets of {requests, errors, latency histogram}."""

    def __init__(
        self,
        bucket_seconds: int = BUCKET_SECONDS,
        keep: int = KEEP_BUCKETS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bucket_seconds = bucket_seconds
        self.keep = keep
        self.clock = clock
        self._series: dict[tuple[str, str, str], dict[int, list[Any]]] = {}
        self._lock = threading.Lock()

    def record(
        self, endpoint: str, variant: str, fleet: str, latency_seconds: float, error: bool
    ) -> None:
        """One answered invocation (``error``: a 5xx, or no instance answered)."""
        start = int(self.clock()) // self.bucket_seconds * self.bucket_seconds
        slot = bisect.bisect_left(LATENCY_BOUNDS_MS, latency_seconds * 1000.0)
        with self._lock:
            buckets = self._series.setdefault((endpoint, variant, fleet), {})
            bucket = buckets.get(start)
            if bucket is None:
                bucket = buckets[start] = [0, 0, [0] * (len(LATENCY_BOUNDS_MS) + 1)]
                oldest = start - self.keep * self.bucket_seconds
                for old in [s for s in buckets if s <= oldest]:
                    del buckets[old]
            bucket[0] += 1
            bucket[1] += int(error)
            bucket[2][slot] += 1

    def snapshot(self) -> dict[str, Any]:
        """Every series with its buckets, oldest first (JSON-ready)."""
        now = int(self.clock())
        oldest = now - self.keep * self.bucket_seconds
        series = []
        with self._lock:
            for (endpoint, variant, fleet), buckets in sorted(self._series.items()):
                kept = [
                    {"start": s, "requests": b[0], "errors": b[1], "latency": list(b[2])}
                    for s, b in sorted(buckets.items())
                    if s > oldest
                ]
                if kept:
                    series.append(
                        {"endpoint": endpoint, "variant": variant, "fleet": fleet, "buckets": kept}
                    )
        return {
            "now": now,
            "bucket_seconds": self.bucket_seconds,
            "latency_bounds_ms": list(LATENCY_BOUNDS_MS),
            "series": series,
        }


def percentile(histogram: Sequence[int], q: float, bounds: Sequence[float]) -> float | None:
    """The ``q`` quantile (0..1) of a latency histogram, in ms (the upper bound of its slot)."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for slot, count in enumerate(histogram):
        seen += count
        if seen >= rank and count:
            return float(bounds[min(slot, len(bounds) - 1)])
    return float(bounds[-1])
