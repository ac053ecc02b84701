"""In-process stand-ins for model containers and the router process, for the serving unit tests.

``FakeModel`` is a real HTTP server on 127.0.0.1 following the hosting contract (``/ping``,
``/invocations``), whose answers a test can change; ``FakeInstances`` starts them as a fleet
backend; ``RouterThread`` runs the real router app under uvicorn in a thread.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import uvicorn

from local_mlops.serving import state as st
from local_mlops.serving.listener import server_config
from local_mlops.serving.router import Router
from local_mlops.serving.state import Fleet, Instance


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeModel:
    """A model server: answers ``{"predictions": [...], "version": V}`` or a chosen error."""

    def __init__(self, version: int, port: int | None = None, unix_path: str = "") -> None:
        self.version = version
        self.status = 200  # what /invocations answers
        self.healthy = True
        self.delay = 0.0
        self.seen: list[dict[str, str]] = []
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def reply(
                self, status: int, body: bytes, content_type: str = "application/json"
            ) -> None:
                head = (
                    f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\nX-Amzn-SageMaker-Custom-Attributes: v={model.version}\r\n\r\n"
                )
                self.wfile.write(head.encode() + body)  # one send: no delayed-ACK stall

            def do_GET(self) -> None:  # noqa: N802
                ok = self.path == "/ping" and model.healthy
                self.reply(200 if ok else 503, b"{}")

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                model.seen.append({k.lower(): v for k, v in self.headers.items()})
                if model.delay:
                    time.sleep(model.delay)
                if model.status != 200:
                    self.reply(
                        model.status, json.dumps({"error": f"broken v{model.version}"}).encode()
                    )
                    return
                answer = {
                    "predictions": [{"label": "7", "size": len(body)}],
                    "version": model.version,
                }
                self.reply(200, json.dumps(answer).encode())

        self.server: socketserver.BaseServer
        if unix_path:  # as a serving container listens for the router (MLOPS_UNIX_SOCKET)
            self.server = socketserver.ThreadingUnixStreamServer(unix_path, Handler)
            self.port = 0
        else:
            self.server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
            self.port = int(self.server.server_address[1])
        self.server.daemon_threads = True  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()  # type: ignore[attr-defined]


class FakeInstances:
    """A fleet backend of ``FakeModel`` servers; ``broken`` versions answer 500."""

    def __init__(self) -> None:
        self.models: dict[str, FakeModel] = {}
        self.broken: set[int] = set()
        self.unhealthy: set[int] = set()

    def start(self, endpoint: str, fleet: Fleet, count: int) -> list[Instance]:
        instances = []
        for number in range(count):
            model = FakeModel(fleet.version)
            model.status = 500 if fleet.version in self.broken else 200
            model.healthy = fleet.version not in self.unhealthy
            name = f"{endpoint}-{fleet.id}-{number}"
            self.models[name] = model
            instances.append(Instance(name, model.port))
        return instances

    def ensure(self, endpoint: str, fleet: Fleet) -> None:
        for instance in fleet.instances:
            if instance.name not in self.models:
                self.models[instance.name] = FakeModel(fleet.version, instance.port)

    def stop(self, instances: list[Instance]) -> None:
        for instance in instances:
            model = self.models.pop(instance.name, None)
            if model:
                model.close()

    def health(self, instance: Instance) -> str | None:
        model = self.models.get(instance.name)
        if model is None:
            return f"container {instance.name} is gone"
        return None if model.healthy else "/ping answered 503"

    def logs(self, instance: Instance, lines: int = 20) -> str:
        return ""

    def close(self) -> None:
        self.stop([Instance(name, 0) for name in list(self.models)])


class RouterThread:
    """The real router app under uvicorn on a free loopback port, in a thread."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = server_config(router, "127.0.0.1", self.port, timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "router did not start"
            time.sleep(0.01)

    # RouterControl, in-process
    def reload(self) -> None:
        self.router.reload()

    def stats(self) -> dict[str, Any]:
        return {
            "fleets": [
                {"endpoint": e, "fleet": f, **vars(s)} for (e, f), s in self.router.stats.items()
            ]
        }

    def flush(self) -> int:
        return self.router.capture.flush() if self.router.capture else 0

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class FolderBucket:
    """An uploader that 'uploads' into a folder: bucket/key -> file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, path: Path, bucket: str, key: str) -> None:
        target = self.root / bucket / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)

    def files(self) -> list[Path]:
        return sorted(self.root.rglob("*.jsonl"))


def runtime(url: str):
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def one_fleet_endpoint(
    store: st.EndpointStore,
    name: str,
    models: list[FakeModel],
    capture: bool = True,
    sampling: int = 100,
) -> st.Endpoint:
    fleet = st.Fleet(
        "v1-aaaa",
        models[0].version,
        "arn:pkg/1",
        "/nowhere",
        "img",
        [st.Instance(f"i{n}", m.port) for n, m in enumerate(models)],
    )
    endpoint = st.Endpoint(
        name,
        st.IN_SERVICE,
        [st.Variant(st.DEFAULT_VARIANT, len(models), 1.0, [fleet])],
        st.DataCapture(capture, sampling, "s3://bkt/datacapture"),
    )
    store.put(endpoint)
    return endpoint
