"""``python3 -m mlops_container.serve`` as SageMaker starts it: contract port, SIGTERM, bad model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from artifacts import write_artifact
from conftest import CONTAINERS
from serving_helpers import IMAGE_SIZE, Health, parse_raw, png_bytes, read_response, request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_ping(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if request(port, "GET", "/ping", timeout=2)[0] == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"/ping did not answer within {timeout} s")


@pytest.fixture()
def served(base_dir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """The serve command on <base>/model/model.tar.gz and $SAGEMAKER_BIND_TO_PORT."""
    model_dir = write_artifact(base_dir / "model", IMAGE_SIZE, archive=True, onnx=True)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(CONTAINERS), "SAGEMAKER_BIND_TO_PORT": str(port)}
    with (base_dir / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlops_container.serve"], env=env, stderr=log
        )
        try:
            wait_for_ping(port, process)
            yield port, process, model_dir
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(30)


def test_serve_command_uses_the_contract_port_and_model(
    served: tuple[int, subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    port, _, model_dir = served
    files = write_artifact(tmp_path / "files", IMAGE_SIZE)  # same seed: the same weights
    Health(files).check(port)


def test_sigterm_finishes_the_request_in_flight_and_exits_0(
    served: tuple[int, subprocess.Popen[bytes], Path],
) -> None:
    port, process, _ = served
    png = png_bytes()
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
        b"Content-Length: %d\r\n\r\n" % len(png)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as in_flight:
        in_flight.sendall(head + png[:50])
        time.sleep(0.2)  # the request has started
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(OSError):  # no new connections once stopping
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        in_flight.sendall(png[50:])
        status, headers, body = parse_raw(read_response(in_flight))
    assert status == 200 and body["predictions"] and headers["connection"] == "close"
    assert process.wait(10) == 0
    assert time.monotonic() - stopped_at < 10


def test_unusable_model_exits_2_with_the_reason(base_dir: Path) -> None:
    (base_dir / "model").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(CONTAINERS), "SAGEMAKER_BIND_TO_PORT": str(free_port())}
    done = subprocess.run(
        [sys.executable, "-m", "mlops_container.serve"], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "holds neither model.json nor model.tar.gz" in done.stderr


def test_serving_package_never_imports_torch() -> None:
    """The serving image has no torch: its modules must import (and load ONNX) without it."""
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
        "import mlops_container.serve, mlops_container.serving.server\n"
        "assert 'local_mlops' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(CONTAINERS)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def unix_request(path: Path, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 request through a Unix socket (as the local router reaches an instance)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        head = f"{method} {target} HTTP/1.1\r\nHost: i\r\nContent-Length: {len(body)}\r\n"
        if body:
            head += "Content-Type: image/png\r\n"
        sock.sendall(head.encode() + b"\r\n" + body)
        status, _, answer = parse_raw(read_response(sock))
    return status, json.dumps(answer).encode()


def test_the_serve_command_also_listens_on_the_unix_socket_it_is_given(
    base_dir: Path, tmp_path: Path
) -> None:
    write_artifact(base_dir / "model", IMAGE_SIZE, archive=True, onnx=True)
    path = tmp_path / "serve.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # what a killed server leaves: a socket file nobody listens on
    stale.close()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(CONTAINERS), "SAGEMAKER_BIND_TO_PORT": str(port),
           "MLOPS_UNIX_SOCKET": str(path)}  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "mlops_container.serve"], env=env)
    try:
        wait_for_ping(port, process)  # the contract's port still serves
        assert unix_request(path, "GET", "/ping")[0] == 200
        status, answer = unix_request(path, "POST", "/invocations", png_bytes())
        assert status == 200 and json.loads(answer)["predictions"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    assert not path.exists()  # removed on the way out


def test_a_socket_that_cannot_be_made_leaves_tcp_serving(base_dir: Path, tmp_path: Path) -> None:
    write_artifact(base_dir / "model", IMAGE_SIZE, archive=True, onnx=True)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(CONTAINERS), "SAGEMAKER_BIND_TO_PORT": str(port),
           "MLOPS_UNIX_SOCKET": str(tmp_path / "no-such-folder" / "serve.sock")}  # fmt: skip
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "mlops_container.serve"], env=env,
                                   stderr=log)  # fmt: skip
        try:
            wait_for_ping(port, process)
        finally:
            process.kill()
            process.wait(30)
    assert "not listening on unix socket" in (tmp_path / "serve.log").read_text()
