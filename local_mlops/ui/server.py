"""Serving the dashboard: uvicorn on 127.0.0.1, in the foreground or in a thread (tests)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from local_mlops.errors import LocalMlopsError
from local_mlops.ui.app import create_app
from local_mlops.ui.data import Dashboard

HOST = "127.0.0.1"


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 (port 0: any free one), bound before uvicorn starts so
    the URL can be printed and a taken port is a clear error."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise LocalMlopsError(
            f"port {port} on {HOST} is taken ({exc.strerror})",
            "pick another with `local-mlops ui --port N`",
        ) from exc
    sock.listen(128)
    return sock


class DashboardServer:
    """uvicorn serving the dashboard on one bound socket; ``url`` says where."""

    def __init__(self, dashboard: Dashboard, port: int = 0) -> None:
        self.socket = bind(port)
        self.url = f"http://{HOST}:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(
            create_app(dashboard), log_level="warning", access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve in the foreground until Ctrl-C or SIGTERM."""
        self.server.run(sockets=[self.socket])

    def __enter__(self) -> DashboardServer:
        """Serve in a daemon thread (tests, notebooks)."""
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise LocalMlopsError("the dashboard did not start within 20 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.socket.close()
