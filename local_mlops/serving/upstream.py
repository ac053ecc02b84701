"""The router's client to the instances: pooled keep-alive HTTP/1.1 connections, parsed by httptools.

A proxy on 127.0.0.1 in front of one model server needs one request shape (``POST`` with a
``Content-Length`` body) and three things from the answer (status, ``Content-Type``, the model's
custom attributes, and the body), so this is what it does, and no more: each request is one
write (head and body together), each answer is parsed as it arrives by the same C parser
uvicorn uses, and the connection goes back to its instance's pool. A general client (aiohttp's)
costs several times the CPU per request for what it can do beyond that, and on 2 cores that CPU
is taken from the model.

- ``NotSent``: the connection could not be made (refused, unreachable, connect timeout):
  nothing reached the instance, so the caller may try another one.
- ``UpstreamError``: the instance took the request but gave no whole answer (it closed the
  connection, or took longer than the timeout): the request may have run, so it is not retried.
- An instance with a Unix socket (``path``) is reached through it (no TCP stack, and no
  docker-proxy relaying a published port); if connecting to it fails, the port is used, and the
  socket is tried again after ``SOCKET_RETRY_SECONDS``.
- An idle connection is reused only while younger than ``idle_seconds``, shorter than the
  serving image's keep-alive (5 s), so the router never writes to one the instance is closing.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from dataclasses import dataclass
from typing import cast

import httptools

CONNECT_TIMEOUT = 2.0
REQUEST_TIMEOUT = 60.0  # SageMaker's model invocation limit
IDLE_SECONDS = 2.0
SOCKET_RETRY_SECONDS = 10.0
MAX_IDLE_PER_INSTANCE = 64
CONTENT_TYPE = b"content-type"
CUSTOM_ATTRIBUTES = b"x-amzn-sagemaker-custom-attributes"
LARGE_BODY = 64 * 1024  # above this, head and body go as two buffers of one write


class NotSent(Exception):
    """No connection to the instance: the request was not sent."""


class UpstreamError(Exception):
    """The instance did not give a whole answer to a request it may have received."""


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    custom_attributes: str
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Reply] | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.content_type = b""
        self.attributes = b""
        self.chunks: list[bytes] = []
        self.headers_done = False
        self.framed = False  # the answer says where it ends (Content-Length or chunked)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:
            # asyncio and uvloop set it already; say so, it matters here
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"the instance sent a malformed answer: {exc}"))
            self.abort()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is None or self.waiter.done():
            return
        if self.headers_done and not self.framed:  # an answer delimited by the close
            self._finish()
            return
        reason = f": {exc!r}" if exc else ""
        self._fail(UpstreamError(f"the instance closed the connection before answering{reason}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == CONTENT_TYPE:
            self.content_type = value
        elif name == CUSTOM_ATTRIBUTES:
            self.attributes = value
        elif name in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.closed = True
            self.abort()
        self._finish()

    # the request
    def _finish(self) -> None:
        reply = Reply(
            self.status,
            self.content_type.decode("latin-1") or "application/octet-stream",
            self.attributes.decode("latin-1"),
            b"".join(self.chunks),
        )
        self._reset()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(reply)

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def send(self, head: bytes, body: bytes) -> asyncio.Future[Reply]:
        assert self.transport is not None
        self.waiter = self.loop.create_future()
        if len(body) > LARGE_BODY:
            self.transport.writelines((head, body))
        else:
            self.transport.write(head + body)
        return self.waiter

    def timed_out(self) -> None:
        self._fail(UpstreamError(f"the instance did not answer within {REQUEST_TIMEOUT:.0f} s"))
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Upstream:
    """A pool of keep-alive connections per instance (``host``, ``port``, socket ``path``)."""

    def __init__(
        self,
        timeout: float = REQUEST_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.idle_seconds = idle_seconds
        self._idle: dict[tuple[str, int, str], deque[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._socket_failed: dict[str, float] = {}  # socket path -> when it last failed

    async def post(self, host: str, port: int, head: bytes, body: bytes, path: str = "") -> Reply:
        """Send one request (``head``: request line and headers, ending with a blank line).

        ``path``: the instance's Unix socket, tried before ``host``:``port`` for a new connection.
        """
        connection = await self._acquire(host, port, path)
        self._busy.add(connection)
        loop = connection.loop
        timer = loop.call_later(self.timeout, connection.timed_out)
        try:
            reply = await connection.send(head, body)
        finally:
            timer.cancel()
            self._busy.discard(connection)
            if connection.waiter is not None and not connection.waiter.done():
                connection.abort()  # cancelled mid-request: the connection's state is unknown
        if not connection.closed:
            connection.idle_since = loop.time()
            pool = self._idle.setdefault((host, port, path), deque())
            if len(pool) < MAX_IDLE_PER_INSTANCE:
                pool.append(connection)
            else:
                connection.abort()
        return reply

    async def _acquire(self, host: str, port: int, path: str = "") -> _Connection:
        loop = asyncio.get_running_loop()
        pool = self._idle.get((host, port, path))
        if pool:
            oldest_usable = loop.time() - self.idle_seconds
            while pool:
                connection = pool.pop()  # the most recently used: the others may age out
                if not connection.closed and connection.idle_since >= oldest_usable:
                    return connection
                connection.abort()
        if path and loop.time() - self._socket_failed.get(path, -SOCKET_RETRY_SECONDS) >= (
            SOCKET_RETRY_SECONDS
        ):
            try:
                transport, protocol = await asyncio.wait_for(
                    loop.create_unix_connection(lambda: _Connection(loop), path),
                    self.connect_timeout,
                )
            except (OSError, TimeoutError):
                self._socket_failed[path] = loop.time()  # stale, or not passed through: the port
            else:
                self._socket_failed.pop(path, None)
                protocol.transport = transport
                return protocol
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), host, port),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise NotSent(f"{host}:{port}: {exc!r}") from exc
        protocol.transport = transport  # uvloop may call connection_made after this returns
        return protocol

    def close(self) -> None:
        """Close every connection (the router is stopping; requests have drained)."""
        for pool in self._idle.values():
            for connection in pool:
                connection.abort()
        self._idle.clear()
        for connection in list(self._busy):
            connection.abort()
