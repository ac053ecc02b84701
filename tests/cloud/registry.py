"""A minimal Docker Registry HTTP API v2, in memory: enough for ``docker push`` to complete.

No image can be pulled on these machines and no registry package is at hand, so the push test
runs this one on loopback (the engine treats 127.0.0.0/8 registries as plain-HTTP). It keeps blobs
and manifests and checks each blob's digest, as a registry does; no auth, no deletes, no pulls of
lists.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Store:
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (name, tag) -> body
    uploads: dict[str, bytearray] = field(default_factory=dict)


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store: Store

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self) -> tuple[str, str, str]:
        """(repository name, kind, reference) of /v2/<name>/<kind>/<reference>."""
        path = self.path.split("?", 1)[0]
        for kind in ("/blobs/uploads/", "/blobs/", "/manifests/"):
            if kind in path:
                name, ref = path[len("/v2/") :].split(kind, 1)
                return name, kind.strip("/"), ref
        return "", "", ""

    def do_GET(self) -> None:  # noqa: N802
        self._body()
        if self.path.rstrip("/") == "/v2":
            self._reply(200, {"Content-Type": "application/json"}, b"{}")
            return
        self._lookup()

    def do_HEAD(self) -> None:  # noqa: N802
        self._lookup()

    def _lookup(self) -> None:
        name, kind, ref = self._route()
        if kind == "blobs" and ref in self.store.blobs:
            blob = self.store.blobs[ref]
            self._reply(200, {"Docker-Content-Digest": ref}, blob)
        elif kind == "manifests" and (name, ref) in self.store.manifests:
            body = self.store.manifests[(name, ref)]
            headers = {
                "Docker-Content-Digest": _digest(body),
                "Content-Type": "application/vnd.docker.distribution.manifest.v2+json",
            }
            self._reply(200, headers, body)
        else:
            self._reply(404, {"Content-Type": "application/json"}, b'{"errors":[]}')

    def do_POST(self) -> None:  # noqa: N802
        self._body()
        name, kind, _ = self._route()
        upload = uuid.uuid4().hex
        self.store.uploads[upload] = bytearray()
        location = f"/v2/{name}/blobs/uploads/{upload}"
        self._reply(202, {"Location": location, "Docker-Upload-UUID": upload, "Range": "0-0"})

    def do_PATCH(self) -> None:  # noqa: N802
        name, _, upload = self._route()
        data = self.store.uploads[upload]
        data += self._body()
        location = f"/v2/{name}/blobs/uploads/{upload}"
        headers = {"Location": location, "Docker-Upload-UUID": upload}
        self._reply(202, headers | {"Range": f"0-{max(len(data) - 1, 0)}"})

    def do_PUT(self) -> None:  # noqa: N802
        name, kind, ref = self._route()
        body = self._body()
        if kind == "manifests":
            self.store.manifests[(name, ref)] = body
            digest = _digest(body)
            self.store.manifests[(name, digest)] = body
            location = f"/v2/{name}/manifests/{digest}"
            self._reply(201, {"Docker-Content-Digest": digest, "Location": location})
            return
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        expected = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("digest", "")
        expected = expected.replace("%3A", ":").replace("%3a", ":")
        data = bytes(self.store.uploads.pop(ref, bytearray()) + body)
        if _digest(data) != expected:
            self._reply(
                400, {"Content-Type": "application/json"}, b'{"errors":[{"code":"DIGEST_INVALID"}]}'
            )
            return
        self.store.blobs[expected] = data
        location = f"/v2/{name}/blobs/{expected}"
        self._reply(201, {"Docker-Content-Digest": expected, "Location": location})


@contextmanager
def running_registry() -> Iterator[tuple[str, Store]]:
    """A registry on 127.0.0.1 for the block: yields (host:port, what it stored)."""
    store = Store()
    handler = type("Handler", (_Handler,), {"store": store})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", store
    finally:
        server.shutdown()
        server.server_close()
