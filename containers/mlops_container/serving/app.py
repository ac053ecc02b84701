"""The ASGI app: SageMaker's hosting routes, with every failure answered as JSON.

``GET /ping`` (200 once the model is loaded), ``GET /execution-parameters``,
``POST /invocations``. The body's size is checked from ``Content-Length`` before a byte is read
(413 over ``SAGEMAKER_MAX_PAYLOAD_IN_MB``, 411 without a length), it must arrive within the read
timeout (408, and the connection is closed), and it is decoded outside the model's thread: on
the event loop when small, in a decode thread when large. Anything unexpected is a 500 with a
JSON body and a logged traceback, never a dropped connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import contract
from ..errors import HTTPError
from . import decoding
from .backends import LoadedModel, softmax
from .batcher import Batcher
from .settings import ServerSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("mlops_container.serving")

JSON_HEADERS = [(b"content-type", b"application/json")]
LINES_TYPE = decoding.LINES_TYPE
LINES_HEADERS = [(b"content-type", LINES_TYPE.encode())]
ROUTES = {"/ping": ("GET", "HEAD"), "/execution-parameters": ("GET",), "/invocations": ("POST",)}
# Bodies and images this small are decoded on the event loop: a thread hop would cost more.
INLINE_BODY_BYTES = 64 * 1024
INLINE_PIXELS = 256 * 256
CLOSING_STATUSES = {408, 411}  # the rest of the stream is unread or of unknown length
# An over-limit body up to this size is discarded as it arrives after the 413 (the client is
# usually still sending, and would see a reset instead of the answer); a larger one is cut off.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


class Responder:
    """Sends exactly one response per request, whatever goes wrong."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False
        self.status = 0

    async def json(self, status: int, value: Any, close: bool = False) -> None:
        await self.raw(
            status, json.dumps(value, separators=(",", ":")).encode(), JSON_HEADERS, close
        )

    async def raw(
        self, status: int, body: bytes, content_type: list[tuple[bytes, bytes]], close: bool = False
    ) -> None:
        if self.started:
            return
        self.started, self.status = True, status
        headers = [*content_type, (b"content-length", str(len(body)).encode())]
        if close:
            headers.append((b"connection", b"close"))
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (first occurrence), decoded as latin-1."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def parse_top_k(scope: Scope, classes: int, default: int = 1) -> int:
    """``top_k=N`` from X-Amzn-SageMaker-Custom-Attributes (``;`` or ``,`` separated)."""
    attributes = header(scope, contract.CUSTOM_ATTRIBUTES_HEADER.encode()) or ""
    for part in attributes.replace(",", ";").split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "top_k":
            value = value.strip()
            if not value.isdigit() or int(value) < 1:
                raise HTTPError(
                    400, f"top_k={value!r} in custom attributes must be a whole number >= 1"
                )
            return min(int(value), classes)
    return min(default, classes)


def check_accept(scope: Scope, answer: str = "application/json") -> None:
    """Refuse an Accept header that excludes the answer's type (406): JSON, or JSON Lines for
    JSON Lines records."""
    accept = header(scope, b"accept")
    if not accept:
        return
    allowed = {"*/*", "application/*", answer}
    if not any(part.split(";", 1)[0].strip().lower() in allowed for part in accept.split(",")):
        raise HTTPError(406, f"Accept {accept!r} excludes {answer}, the answer's type")


class ServingApp:
    """The server's ASGI callable around one loaded model."""

    def __init__(self, model: LoadedModel, settings: ServerSettings) -> None:
        self.model = model
        self.settings = settings
        backend = model.backend
        self.batcher = Batcher(lambda batch: softmax(backend.run(batch)), settings.max_batch)
        self.decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        self.ready = True

    def close(self) -> None:
        """Let queued forwards finish, then stop the threads."""
        self.ready = False
        self.batcher.stop()
        self.decoder.shutdown(wait=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        responder = Responder(send)
        started = time.perf_counter()
        try:
            await self._route(scope, receive, responder)
        except HTTPError as error:
            log.warning("%d %s %s: %s", error.status, scope["method"], scope["path"], error)
            close = error.close or error.status in CLOSING_STATUSES
            await responder.json(error.status, {"error": str(error)}, close=close)
        except Exception as error:
            log.exception("500 %s %s after %.1f ms", scope["method"], scope["path"],
                          (time.perf_counter() - started) * 1000)  # fmt: skip
            await responder.json(
                500, {"error": f"internal server error ({type(error).__name__}); see the log"}, True
            )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(None, self.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: Scope, receive: Receive, responder: Responder) -> None:
        path, method = scope["path"], scope["method"]
        methods = ROUTES.get(path)
        if methods is None:
            raise HTTPError(404, f"no route {path}; use /ping, /invocations, /execution-parameters")
        if method not in methods:
            raise HTTPError(405, f"{method} is not allowed on {path}; use {' or '.join(methods)}")
        if path == "/ping":
            if not self.ready:
                raise HTTPError(503, "the model is not loaded")
            await responder.json(200, {"status": "healthy", "backend": self.model.backend.name})
        elif path == "/execution-parameters":
            await responder.json(200, {
                "MaxConcurrentTransforms": self.settings.max_batch,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": max(1, int(self.settings.max_payload_mb)),
            })  # fmt: skip
        else:
            await self._invocations(scope, receive, responder)

    async def _invocations(self, scope: Scope, receive: Receive, responder: Responder) -> None:
        content_type = header(scope, b"content-type") or ""
        media = decoding.check_content_type(content_type)  # 415 before reading a byte
        check_accept(scope, LINES_TYPE if media == LINES_TYPE else "application/json")
        top_k = parse_top_k(scope, len(self.model.classes), self.settings.top_k)
        body = await self._read_body(scope, receive)
        if body is None:
            return  # the client went away before sending its body: nobody to answer
        if media == LINES_TYPE:
            await self._lines(body, top_k, responder)
            return
        try:
            batch = await self._decode(content_type, body)
        except HTTPError as error:
            if not (self.settings.record_errors and error.status == 400):
                raise
            # Batch transform: this record's .out says what is wrong; the job goes on.
            log.warning("record error (answered 200): %s", error)
            await responder.json(200, {"error": str(error), "status": error.status})
            return
        probabilities = await self.batcher.infer(batch)
        await responder.json(200, {"predictions": self.predictions(probabilities, top_k)})

    async def _lines(self, body: bytes, top_k: int, responder: Responder) -> None:
        """JSON Lines records: one forward over every readable image, one answer line each."""
        size = self.model.image_size
        records = await self._off_loop(decoding.parse_lines, body, size)
        images = [item for _, item in records if not isinstance(item, HTTPError)]
        predictions: list[dict[str, Any]] = []
        if images:
            batch = await self._off_loop(decoding.to_batch, images, size)
            predictions = self.predictions(await self.batcher.infer(batch), top_k)
        answers, found = [], iter(predictions)
        for name, item in records:
            if isinstance(item, HTTPError):
                answer: dict[str, Any] = {"name": name, "error": str(item), "status": item.status}
            else:
                answer = {"name": name, "predictions": [next(found)]}
            answers.append(json.dumps(answer, separators=(",", ":")))
        await responder.raw(200, "\n".join(answers).encode(), LINES_HEADERS)

    async def _decode(self, content_type: str, body: bytes) -> np.ndarray:
        """The body as a model batch, decoded off the event loop when it is large."""
        size = self.model.image_size
        if len(body) <= INLINE_BODY_BYTES:
            items = decoding.parse_body(content_type, body, size)
        else:
            items = await self._off_loop(decoding.parse_body, content_type, body, size)
        if decoding.pixel_count(items) <= INLINE_PIXELS:
            return decoding.to_batch(items, size)
        return await self._off_loop(decoding.to_batch, items, size)  # type: ignore[no-any-return]

    async def _off_loop(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.decoder, function, *args)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, within the size limit and the read timeout."""
        limit = self.settings.max_payload_bytes
        length_header = header(scope, b"content-length")
        chunked = "chunked" in (header(scope, b"transfer-encoding") or "").lower()
        if length_header is None and not chunked:
            raise HTTPError(411, "Content-Length is required on POST /invocations")
        length = None
        if length_header is not None:
            if not length_header.strip().isdigit():
                raise HTTPError(
                    400, f"Content-Length {length_header!r} is not a whole number", close=True
                )
            length = int(length_header)
            if length > limit:
                raise HTTPError(413, self._too_large(length), close=length > DRAIN_LIMIT_BYTES)
        parts: list[bytes] = []
        received = 0
        deadline = time.monotonic() + self.settings.read_timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise HTTPError(
                    408,
                    f"the body did not arrive within {self.settings.read_timeout:g} s "
                    f"({received} of {length if length is not None else '?'} bytes)",
                ) from None
            if message["type"] == "http.disconnect":
                log.warning("client left after %d body bytes of %s", received, length)
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                raise HTTPError(413, self._too_large(received))
            parts.append(chunk)
            if not message.get("more_body", False):
                return parts[0] if len(parts) == 1 else b"".join(parts)

    def _too_large(self, size: int) -> str:
        return (
            f"payload of {size} bytes exceeds the limit of {self.settings.max_payload_bytes} "
            f"bytes ({contract.MAX_PAYLOAD_ENV}={self.settings.max_payload_mb:g})"
        )

    def predictions(self, probabilities: np.ndarray, top_k: int) -> list[dict[str, Any]]:
        """Per instance: the best label, its index, every class probability and the top k."""
        classes = self.model.classes
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
        rounded = np.round(probabilities, 6).tolist()
        results = []
        for row, best in zip(rounded, order.tolist(), strict=True):
            results.append({
                "label": classes[best[0]],
                "index": best[0],
                "probability": row[best[0]],
                "top_k": [{"label": classes[i], "index": i, "probability": row[i]} for i in best],
                "probabilities": dict(zip(classes, row, strict=True)),
            })  # fmt: skip
        return results
