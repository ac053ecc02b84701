"""The labeling page's HTTP server: stdlib ``http.server`` on 127.0.0.1, JSON API, no framework.

Routes: ``GET /`` (the page), ``GET /api/state``, ``GET /api/image?key=K``, ``POST /api/label``
``{"key", "label"}``, ``POST /api/skip`` ``{"key"}``, ``POST /api/undo``. Errors are JSON
``{"error", "fix"}`` with a 4xx/5xx status. Only loopback is served; the Host header is checked
(against DNS rebinding) and POSTs must be ``application/json`` (a cross-site form cannot send that
without a CORS preflight, which this server never grants).
"""

from __future__ import annotations

import json
import mimetypes
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local_mlops.errors import LocalMlopsError
from local_mlops.labeling.page import PAGE
from local_mlops.labeling.session import LabelingSession

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, error: str, fix: str = "") -> None:
        super().__init__(error)
        self.status, self.error, self.fix = status, error, fix


class LabelingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, session: LabelingSession, port: int = 0) -> None:
        self.session = session
        try:
            super().__init__((HOST, port), Handler)
        except OSError as exc:
            raise LocalMlopsError(
                f"cannot listen on {HOST}:{port}: {exc.strerror}",
                "choose another --port, or omit it to take a free one",
            ) from exc
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def start_background(self) -> None:
        """Serve from a thread (tests and embedding); ``stop`` ends it."""
        self._thread = threading.Thread(
            target=self.serve_forever, args=(0.05,), name="labeling", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: LabelingServer
    server_version = "local-mlops-label"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the terminal shows the URL and the summary, not every keystroke

    # -- dispatch --------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch({"/": self._page, "/api/state": self._state, "/api/image": self._image})

    def do_POST(self) -> None:
        self._dispatch(
            {"/api/label": self._label, "/api/skip": self._skip, "/api/undo": self._undo}
        )

    def _dispatch(self, routes: dict[str, Any]) -> None:
        path = urlsplit(self.path).path
        try:
            self._check_host()
            route = routes.get(path)
            if route is None:
                other = "POST" if self.command == "GET" else "GET"
                if path in {
                    "/",
                    "/api/state",
                    "/api/image",
                    "/api/label",
                    "/api/skip",
                    "/api/undo",
                }:
                    raise ApiError(
                        HTTPStatus.METHOD_NOT_ALLOWED,
                        f"{self.command} {path} is not allowed",
                        f"use {other}",
                    )
                raise ApiError(HTTPStatus.NOT_FOUND, f"no such endpoint: {path}", "see GET /")
            route()
        except ApiError as exc:
            self._json(exc.status, {"error": exc.error, "fix": exc.fix})
        except LocalMlopsError as exc:
            self._json(
                HTTPStatus.INTERNAL_SERVER_ERROR, {"error": exc.message, "fix": exc.fix or ""}
            )
        except Exception as exc:  # one bad request must not take the server down
            traceback.print_exc(file=sys.stderr)
            self._json(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"error": f"internal error: {exc!r}", "fix": "see the terminal for the traceback"},
            )

    def _check_host(self) -> None:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host not in {HOST, "localhost"}:
            raise ApiError(
                HTTPStatus.FORBIDDEN, f"unexpected Host header {host!r}", f"open {self.server.url}"
            )

    # -- responses -------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _body(self) -> dict[str, Any]:
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            raise ApiError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "the request body must be JSON",
                "send Content-Type: application/json",
            )
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "missing or invalid Content-Length",
                "send a small JSON body",
            )
        raw = self.rfile.read(length)
        try:
            data = json.loads(raw or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                f"the body is not valid JSON: {exc}",
                'send e.g. {"key": "a.png", "label": 0}',
            ) from exc
        if not isinstance(data, dict):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "the body must be a JSON object",
                'send e.g. {"key": "a.png"}',
            )
        return data

    # -- routes ----------------------------------------------------------------------------

    def _page(self) -> None:
        self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")

    def _state(self) -> None:
        self._json(HTTPStatus.OK, self.server.session.state())

    def _image(self) -> None:
        keys = parse_qs(urlsplit(self.path).query).get("key", [])
        if len(keys) != 1 or keys[0] not in self.server.session.keys:
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                f"no image with key {keys[:1]!r}",
                "use a key from GET /api/state",
            )
        key = keys[0]
        try:
            data = self.server.session.source.read(key)
        except OSError as exc:
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                f"cannot read {key}: {exc}",
                "skip it (Space) and check the file",
            ) from exc
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, data, content_type, cache="private, max-age=300")

    def _label(self) -> None:
        body = self._body()
        try:
            item = self.server.session.label(body.get("key"), body.get("label"))
        except KeyError as exc:
            raise ApiError(
                HTTPStatus.NOT_FOUND, str(exc.args[0]), "use a key from GET /api/state"
            ) from exc
        except ValueError as exc:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, str(exc), "send label as a class index (0-based)"
            ) from exc
        self._json(HTTPStatus.OK, {"item": item, "counts": self.server.session.counts()})

    def _skip(self) -> None:
        body = self._body()
        try:
            item = self.server.session.skip(body.get("key"))
        except KeyError as exc:
            raise ApiError(
                HTTPStatus.NOT_FOUND, str(exc.args[0]), "use a key from GET /api/state"
            ) from exc
        self._json(HTTPStatus.OK, {"item": item, "counts": self.server.session.counts()})

    def _undo(self) -> None:
        self._body()
        undone = self.server.session.undo()
        self._json(HTTPStatus.OK, {"undone": undone, "counts": self.server.session.counts()})
