"""Dynamic batching that never waits alone (Triton's default batcher, queue delay 0).

One inference thread owns the model. The moment it is free it takes everything queued, up to
``max_batch`` images, runs one forward over all of it and hands each request its rows back.
A lone request therefore runs at once, and requests that arrive while a forward runs share the
next one. The thread releases the GIL inside ONNX Runtime, so the event loop keeps reading and
decoding requests meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("mlops_container.serving")


@dataclass
class _Request:
    batch: np.ndarray
    future: asyncio.Future[np.ndarray]
    loop: asyncio.AbstractEventLoop


_STOP = object()


def _resolve(future: asyncio.Future[np.ndarray], value: np.ndarray) -> None:
    if not future.done():
        future.set_result(value)


def _reject(future: asyncio.Future[np.ndarray], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class Batcher:
    """Queues batches from many requests and runs them through ``run`` in shared forwards."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], max_batch: int) -> None:
        self.run = run
        self.max_batch = max_batch
        self.forwards = 0  # how many forwards ran (tests read it to see sharing)
        self.images = 0
        self._queue: queue.SimpleQueue[_Request | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="inference", daemon=True)
        self._thread.start()

    async def infer(self, batch: np.ndarray) -> np.ndarray:
        """The ``run`` output rows for ``batch``, computed with whatever else is queued."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.put(_Request(batch, future, loop))
        return await future

    def stop(self, timeout: float = 5.0) -> None:
        """Finish what is queued, then end the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _take(self, first: _Request) -> tuple[list[_Request], bool]:
        """``first`` plus what is queued right now, up to ``max_batch`` images."""
        taken, count = [first], len(first.batch)
        while count < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return taken, True
            assert isinstance(item, _Request)
            taken.append(item)
            count += len(item.batch)
        return taken, False

    def _work(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            assert isinstance(first, _Request)
            taken, stopping = self._take(first)
            try:
                outputs = self._forward([request.batch for request in taken])
            except Exception as error:  # answered as a 500 by each waiting request
                log.exception("inference failed for %d request(s)", len(taken))
                for request in taken:
                    request.loop.call_soon_threadsafe(_reject, request.future, error)
                continue
            start = 0
            for request in taken:
                rows = outputs[start : start + len(request.batch)]
                start += len(request.batch)
                request.loop.call_soon_threadsafe(_resolve, request.future, rows)

    def _forward(self, batches: list[np.ndarray]) -> np.ndarray:
        inputs = np.concatenate(batches) if len(batches) > 1 else batches[0]
        chunks = [
            self.run(inputs[start : start + self.max_batch])
            for start in range(0, len(inputs), self.max_batch)
        ]
        self.forwards += len(chunks)
        self.images += len(inputs)
        return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
