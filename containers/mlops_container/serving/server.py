"""The ``serve`` entry point: load the model, then serve it with uvicorn until SIGTERM.

Listens on ``0.0.0.0:$SAGEMAKER_BIND_TO_PORT`` (8080), and also on the Unix socket
``$MLOPS_UNIX_SOCKET`` when set (local endpoints mount a host folder for it: the router on the
host reaches the server there without Docker's docker-proxy relay of the published port); both
open only once the model is loaded, so ``/ping`` never answers before it can predict. SIGTERM (``docker stop``) stops
accepting connections, lets in-flight requests finish and exits 0.

Example::

    SAGEMAKER_BASE_DIR=/tmp/job python3 -m mlops_container.serve
    curl --data-binary @digit.png -H 'Content-Type: image/png' localhost:8080/invocations
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httptools
import uvicorn
from PIL import Image
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .. import contract
from ..errors import UserError
from ..privileges import drop_root
from . import backends, decoding
from .app import ServingApp
from .settings import ServerSettings

log = logging.getLogger("mlops_container.serving")
GRACEFUL_SHUTDOWN_SECONDS = 7  # SageMaker and `docker stop` wait 10 s before SIGKILL
IDLE_CONNECTION_SECONDS = 5
MAX_CONNECTIONS = 1000


class JsonErrorsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering malformed requests in JSON with the reason.

    A bad ``Content-Length`` (negative, not a number) is rejected by the HTTP parser before the
    app sees the request; this says why. A connection that sends nothing (no request, or no more
    of a body already answered) is closed after the keep-alive timeout instead of held forever.
    """

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        # The parent's, keeping the parser's reason (it answers a fixed text instead).
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self.send_400_response(str(error) or "invalid HTTP request")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        # Between requests (or while the rest of an answered body is discarded) an idle
        # connection times out; the parent only arms that timer after a response.
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.timeout_keep_alive_task is None and not self.transport.is_closing():
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def send_400_response(self, msg: str) -> None:
        detail = msg
        body = json.dumps({"error": f"malformed HTTP request: {detail}"}).encode()
        log.warning("400 malformed HTTP request from %s: %s", self.client, detail)
        self.transport.write(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        self.transport.close()


def build_parser() -> argparse.ArgumentParser:
    """Optional overrides; SageMaker starts ``serve`` without arguments."""
    parser = argparse.ArgumentParser(
        prog="python3 -m mlops_container.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-dir", type=Path, default=contract.path(contract.MODEL_PATH))
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=None, help="default: $SAGEMAKER_BIND_TO_PORT")
    return parser


def build_app(model_dir: Path, settings: ServerSettings) -> ServingApp:
    """Load the model and wrap it in the ASGI app (also used by the tests in-process)."""
    # Pillow's own limit, lowered to the server's: it refuses twice that when opening; the
    # server refuses anything over it from the header, so Pillow's warning is only noise.
    Image.MAX_IMAGE_PIXELS = decoding.MAX_IMAGE_PIXELS
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    model = backends.load(model_dir, settings.backend, settings.intra_op_threads)
    log.info("loaded %s with %s in %.2f s (%d classes, %d px)", model_dir,
             model.backend.name, model.load_seconds, len(model.classes), model.image_size)  # fmt: skip
    return ServingApp(model, settings)


def uvicorn_config(
    app: ServingApp, host: str, port: int, settings: ServerSettings
) -> uvicorn.Config:
    """uvicorn with httptools, uvloop when present, our JSON error protocol and timeouts."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=JsonErrorsProtocol,
        loop="auto",
        lifespan="on",
        access_log=settings.access_log,
        log_config=None,
        server_header=False,
        timeout_keep_alive=IDLE_CONNECTION_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        limit_concurrency=MAX_CONNECTIONS,
    )


def unix_listener(path: str) -> socket.socket | None:
    """A socket bound at ``path`` (a stale one from a killed server replaced), or None if the
    folder cannot hold one (e.g. a mount that does not pass sockets): TCP still serves."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        Path(path).unlink(missing_ok=True)
        sock.bind(path)
        # The host side connects as another user; the host folder above the mount is the gate.
        os.chmod(path, 0o666)
    except OSError as error:
        sock.close()
        log.warning("not listening on unix socket %s (%s); TCP only", path, error)
        return None
    return sock


def listeners(config: uvicorn.Config, settings: ServerSettings) -> list[socket.socket]:
    """The TCP socket SageMaker's contract names, and the Unix socket when one is asked for."""
    found = [config.bind_socket()]
    if settings.unix_socket:
        unix = unix_listener(settings.unix_socket)
        if unix is not None:
            found.append(unix)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit 0 after SIGTERM/SIGINT, 2 when the model or a setting is unusable."""
    drop_root()
    started = time.perf_counter()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        settings = ServerSettings.from_env()
        app = build_app(args.model_dir, settings)
    except (UserError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    port = settings.port if args.port is None else args.port
    config = uvicorn_config(app, args.host, port, settings)
    server = uvicorn.Server(config)
    sockets = listeners(config, settings)
    # uvicorn re-raises the signal after its graceful shutdown; a no-op handler makes that exit 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    also = f" and {settings.unix_socket}" if len(sockets) > 1 else ""
    log.info("serving on %s:%d%s (%.2f s after start)", args.host, port, also,
             time.perf_counter() - started)  # fmt: skip
    try:
        server.run(sockets=sockets)
    finally:
        if len(sockets) > 1:
            Path(settings.unix_socket).unlink(missing_ok=True)
    log.info("stopped after %d requests", server.server_state.total_requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
