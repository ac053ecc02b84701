"""The serving image for real: lean (no torch, non-root), serves model.tar.gz, stops cleanly."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from local_mlops.devenv import dockerhost

pytestmark = pytest.mark.docker

CONTAINERS = Path(__file__).parents[2] / "containers"
SIZE_GOAL_BYTES = 400 * 1000 * 1000


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def write_model(folder: Path, onnx: bool = True) -> Path:
    """A seeded 16 px mobilenet artifact as the training job packs it (model.tar.gz)."""
    sys.path.insert(0, str(CONTAINERS))
    import torch

    from mlops_container import onnx_export
    from mlops_container.models import build_model, save_artifact

    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small", 3, 16, [0.5] * 3, [0.25] * 3).eval()
    files = folder / "files"
    files.mkdir(parents=True)
    if onnx:
        onnx_export.export(model, files / "model.onnx", 16)
    meta = {"architecture": "mobilenet_v3_small", "num_classes": 3, "classes": ["a", "b", "c"],
            "image_size": 16, "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3}}  # fmt: skip
    save_artifact(files, model, meta)
    with tarfile.open(folder / "model.tar.gz", "w:gz") as tar:
        for path in sorted(files.iterdir()):
            tar.add(path, arcname=path.name)
    pixels = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        np.save(folder / "expected.npy", torch.softmax(model(pixels), 1).numpy())
    np.save(folder / "input.npy", pixels.numpy()[0].transpose(1, 2, 0))
    for path in files.iterdir():
        path.unlink()
    files.rmdir()
    folder.chmod(0o755)  # pytest's folders are private; the image's user must read the model
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(port: int, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=body,
        headers={"Content-Type": content_type, "X-Amzn-SageMaker-Custom-Attributes": "top_k=2"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("serving-model"))


@pytest.fixture()
def container(serving_image: str, model: Path) -> Iterator[tuple[str, int]]:
    port, name = free_port(), f"local-mlops-test-serving-{free_port()}"
    started = docker(
        "run", "-d", "--name", name, "-e", "SAGEMAKER_BIND_TO_PORT=8085",
        "-p", f"127.0.0.1:{port}:8085", "-v", f"{model}:/opt/ml/model:ro", serving_image, "serve",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("no /ping 200:\n" + docker("logs", name).stderr[-2000:])
        yield name, port
    finally:
        docker("rm", "-f", name)


def test_image_is_lean_and_runs_as_a_user(serving_image: str) -> None:
    assert dockerhost.image_size(serving_image) <= SIZE_GOAL_BYTES
    probe = docker("run", "--rm", serving_image, "python3", "-c",
                   "import os, importlib.util as u; print(os.getuid(), u.find_spec('torch'))")  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    uid, torch_spec = probe.stdout.split()
    assert uid != "0" and torch_spec == "None"


def test_serves_the_onnx_model_and_stops_with_exit_0(
    container: tuple[str, int], model: Path
) -> None:
    name, port = container
    status, body = post(port, (model / "input.npy").read_bytes(), "application/x-npy")
    assert status == 200, body
    (prediction,) = body["predictions"]
    expected = np.load(model / "expected.npy")[0]
    got = np.array([prediction["probabilities"][c] for c in ("a", "b", "c")])
    assert np.abs(got - expected).max() < 1e-4 and len(prediction["top_k"]) == 2
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format="JPEG")
    assert post(port, buffer.getvalue(), "image/jpeg")[0] == 200
    # A bad payload is answered, and the next good one still is.
    status, body = post(port, b"GIF89a not really", "image/png")
    assert status == 400 and "not a readable PNG or JPEG" in body["error"]
    assert post(port, buffer.getvalue(), "image/jpeg")[0] == 200
    started = time.monotonic()
    docker("stop", name, timeout=30)
    assert time.monotonic() - started < 10
    assert docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "0"


def test_unreadable_model_folder_names_the_fix(serving_image: str, tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    done = docker("run", "--rm", "-v", f"{private}:/opt/ml/model:ro", serving_image, "serve")
    assert done.returncode == 2
    assert "cannot read /opt/ml/model" in done.stderr and "a+rX" in done.stderr


def test_artifact_without_onnx_exits_2_naming_the_runtime_image(
    serving_image: str, tmp_path: Path
) -> None:
    old = write_model(tmp_path / "old", onnx=False)
    done = docker("run", "--rm", "-v", f"{old}:/opt/ml/model:ro", serving_image, "serve")
    assert done.returncode == 2
    assert "serve it with the runtime image" in done.stderr
