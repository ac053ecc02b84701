"""The inference server run in-process on a free port, plus HTTP and raw-socket clients."""

from __future__ import annotations

import functools
import http.client
import io
import json
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import uvicorn
from conftest import pattern_image
from PIL import Image

from mlops_container.images import to_rgb_array
from mlops_container.models import load_model
from mlops_container.serving.app import ServingApp
from mlops_container.serving.server import build_app, uvicorn_config
from mlops_container.serving.settings import ServerSettings

IMAGE_SIZE = 8


@dataclass
class Running:
    port: int
    app: ServingApp
    server: uvicorn.Server


@contextmanager
def running_server(
    model_dir: Path, env: Mapping[str, str] | None = None, app: ServingApp | None = None
) -> Iterator[Running]:
    """uvicorn with the server's own config in a thread; stopped (gracefully) on exit."""
    settings = ServerSettings.from_env(dict(env or {}))
    app = app or build_app(model_dir, settings)
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", 0, settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Running(port, app, server)
    finally:
        server.should_exit = True
        thread.join(15)


def png_bytes(label: int = 1, variant: int = 3, size: int = IMAGE_SIZE, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    pattern_image(label, variant, size, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, headers) over a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        raw = response.read()
        assert response.getheader("content-type") == "application/json", raw[:200]
        return response.status, json.loads(raw), dict(response.getheaders())
    finally:
        connection.close()


def invoke(port: int, body: bytes, content_type: str, **headers: str) -> tuple[int, dict[str, Any]]:
    status, payload, _ = request(
        port, "POST", "/invocations", body, {"Content-Type": content_type, **headers}
    )
    return status, payload


def _complete(answer: bytes) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.decode("latin-1").lower().split("\r\n"):
        if line.startswith("content-length:"):
            return len(body) >= int(line.split(":", 1)[1])
    return False


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes and read one answer (until it is complete or the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while not _complete(answer):
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            answer += chunk
    return answer


def parse_raw(answer: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    """(status, lower-cased headers, JSON body) of one raw HTTP/1.1 response."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", len(body)))
    return status, headers, json.loads(body[:length])


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 response from ``sock``: headers, then Content-Length bytes (or up to
    EOF), however the server's writes were split into segments."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            return answer
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while match is None or len(body) < int(match[1]):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@functools.lru_cache(maxsize=8)
def _torch_model(model_dir: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    return load_model(model_dir)


def expected_probabilities(model_dir: Path, png: bytes) -> np.ndarray:
    """The PyTorch model's answer for an image, decoded the way preprocessing does."""
    model, meta = _torch_model(model_dir)
    pixels = to_rgb_array(Image.open(io.BytesIO(png)), int(meta["image_size"]))
    inputs = torch.from_numpy(pixels.transpose(2, 0, 1).copy()).float().div(255)[None]
    with torch.inference_mode():
        return torch.softmax(model(inputs), dim=1)[0].numpy()


class Health:
    """Asserts the server still answers a known image correctly."""

    def __init__(self, model_dir: Path) -> None:
        self.png = png_bytes()
        self.expected = expected_probabilities(model_dir, self.png)

    def check(self, port: int) -> None:
        status, body = invoke(port, self.png, "image/png")
        assert status == 200, body
        (prediction,) = body["predictions"]
        got = np.array(list(prediction["probabilities"].values()))
        assert np.abs(got - self.expected).max() < 1e-4
        assert prediction["index"] == int(self.expected.argmax())
