"""The inference server over real HTTP: ping, predictions, and each client error."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from artifacts import CLASSES, write_artifact
from conftest import CONTAINERS, pattern_image

from mlops_container import serve


def png_bytes(mode: str = "L", size: int = 8) -> bytes:
    buffer = io.BytesIO()
    pattern_image(1, 3, size, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def request(
    port: int, method: str, path: str, body: bytes | None = None, content_type: str | None = None
) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": content_type} if content_type else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    payload = json.loads(response.read() or b"{}")
    connection.close()
    return response.status, payload


def wait_for_ping(port: int, timeout: float = 60.0) -> None:
    """Poll /ping until it answers 200 (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/ping")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"/ping did not answer within {timeout} s")


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A server on a free port in a thread, serving a model given as model.tar.gz."""
    model_dir = write_artifact(tmp_path_factory.mktemp("model"), archive=True)
    os.environ[serve.contract.MAX_PAYLOAD_ENV] = "1"
    try:
        server = serve.build_server(model_dir, "127.0.0.1", 0)
    finally:
        del os.environ[serve.contract.MAX_PAYLOAD_ENV]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    wait_for_ping(server.server_address[1])
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("content_type", ["image/png", "application/x-image"])
def test_png_gets_top1_and_all_probabilities(port: int, content_type: str) -> None:
    status, body = request(port, "POST", "/invocations", png_bytes(), content_type)
    assert status == 200
    (prediction,) = body["predictions"]
    assert prediction["label"] == CLASSES[prediction["index"]]
    assert set(prediction["probabilities"]) == set(CLASSES)
    assert abs(sum(prediction["probabilities"].values()) - 1.0) < 1e-3


def test_jpeg_of_another_size_is_resized(port: int) -> None:
    buffer = io.BytesIO()
    pattern_image(2, 1, 40, "RGB").save(buffer, format="JPEG")
    status, body = request(port, "POST", "/invocations", buffer.getvalue(), "image/jpeg")
    assert status == 200 and len(body["predictions"]) == 1


def test_json_instances_give_one_prediction_each(port: int) -> None:
    encoded = base64.b64encode(png_bytes()).decode()
    payload = json.dumps({"instances": [encoded, {"b64": encoded}]}).encode()
    status, body = request(port, "POST", "/invocations", payload, "application/json")
    assert status == 200 and len(body["predictions"]) == 2


def test_wrong_content_type_is_415(port: int) -> None:
    status, body = request(port, "POST", "/invocations", b"hello", "text/plain")
    assert status == 415 and "unsupported Content-Type 'text/plain'" in body["error"]


def test_corrupt_image_is_400(port: int) -> None:
    status, body = request(port, "POST", "/invocations", png_bytes()[:30], "image/png")
    assert status == 400 and "cannot be decoded" in body["error"]


def test_oversized_payload_is_413(port: int) -> None:
    status, body = request(port, "POST", "/invocations", b"\0" * (1024 * 1024 + 1), "image/png")
    assert status == 413 and "exceeds the limit" in body["error"]


def test_execution_parameters(port: int) -> None:
    status, body = request(port, "GET", "/execution-parameters")
    assert status == 200 and body["MaxPayloadInMB"] == 1


def test_serve_command_uses_the_contract_port(base_dir: Path) -> None:
    """``python3 -m mlops_container.serve`` finds <base>/model and SAGEMAKER_BIND_TO_PORT."""
    write_artifact(base_dir / "model")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(CONTAINERS), "SAGEMAKER_BIND_TO_PORT": str(free)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops_container.serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_ping(free)
        status, _ = request(free, "POST", "/invocations", png_bytes(), "image/png")
        assert status == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
