"""The router's HTTP server: uvicorn (httptools), with each response leaving in one write.

uvicorn writes a response's status line and headers, then its body, as two writes: two send
calls, two TCP segments, and on loopback the kernel delivers each to the client inside the
sender's send call, which is where the router's CPU went (py-spy: socket writes). Here what a
request writes within one turn of the event loop leaves as one send at the end of that turn;
the router's app sends a response's start and body in the same turn, so each response is one
write, and a response never waits for a later turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _TurnWriter:
    """A transport whose writes within one event-loop turn are sent together."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending is None:
            self._pending = [bytes(data)]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(bytes(data))

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def __getattr__(self, name: str) -> Any:  # everything else as the transport has it
        return getattr(self._transport, name)


class OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a ``_TurnWriter``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_TurnWriter(transport, self.loop))  # type: ignore[arg-type]


def server_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """The router's uvicorn settings (the router process and the tests use the same)."""
    settings: dict[str, Any] = {
        "http": OneWriteProtocol,
        "lifespan": "on",
        "access_log": False,
        "log_level": "warning",
        # Nothing sits in front of the router; these save work on every request.
        "proxy_headers": False,
        "server_header": False,
        "date_header": False,
        "timeout_graceful_shutdown": 30,
        "backlog": 1024,
    }
    settings.update(options)
    return uvicorn.Config(app, host=host, port=port, **settings)
