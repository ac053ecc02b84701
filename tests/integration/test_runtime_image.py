"""The runtime image honours the SageMaker container contract, for real, in Docker."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from local_mlops.devenv import dockerhost

pytestmark = pytest.mark.docker

SAGEMAKER_NETWORK = "sagemaker-local"


def run_in(
    image: str, docker_args: list[str], command: list[str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "run", "--rm", *docker_args, image, *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_tiny_channels(base: Path, n_per_class: int = 6, classes: int = 3, size: int = 16) -> None:
    """A tiny preprocessed dataset in the format the preprocess step writes."""
    import numpy as np

    rng = np.random.default_rng(0)
    for split in ("train", "validation"):
        folder = base / "input" / "data" / split
        folder.mkdir(parents=True)
        labels = np.repeat(np.arange(classes), n_per_class)
        images = (rng.random((len(labels), size, size, 3)) * 60).astype("uint8")
        images[..., 0] += (labels * 60).astype("uint8")[:, None, None]  # learnable signal
        np.savez(
            folder / "data.npz",
            images=images,
            labels=labels.astype("int64"),
            source_refs=np.array([f"s3://b/{i}.png" for i in range(len(labels))]),
        )
        (folder / "classes.json").write_text(json.dumps([f"c{i}" for i in range(classes)]))
        (folder / "normalization.json").write_text(
            json.dumps({"mean": [0.3] * 3, "std": [0.2] * 3})
        )


def test_image_holds_no_wheels_or_pip_caches(runtime_image: str) -> None:
    # /usr/share/python-wheels is Debian's python3-venv package (ensurepip's bundle), not ours.
    find = "find / -xdev \\( -name '*.whl' -o -path '*/.cache/pip' \\) -not -path '/usr/share/python-wheels/*'"
    found = run_in(runtime_image, [], ["sh", "-c", find + " 2>/dev/null"])
    assert found.returncode == 0
    assert found.stdout.strip() == ""


def test_train_on_a_tiny_channel_writes_the_model(runtime_image: str, tmp_path: Path) -> None:
    base = tmp_path / "ml"
    write_tiny_channels(base)
    (base / "input" / "config").mkdir(parents=True)
    hps = {"epochs": "1", "batch_size": "8", "backbone": '"mobilenet_v3_small"'}
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hps))
    done = run_in(runtime_image, ["-v", f"{base}:/opt/ml"], ["train"])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "val_accuracy=" in done.stdout
    meta = json.loads((base / "model" / "model.json").read_text())
    assert meta["classes"] == ["c0", "c1", "c2"]
    assert (base / "model" / "model.pt").stat().st_size > 1000
    # /opt/ml was mounted owned by root, as SageMaker mounts it: the job still ran as the
    # image's unprivileged user (uid 1000), which wrote the model.
    assert {(base / "model" / name).stat().st_uid for name in ("model.pt", "model.json")} == {1000}


def test_bad_hyperparameter_fails_with_the_reason_in_output_failure(
    runtime_image: str, tmp_path: Path
) -> None:
    base = tmp_path / "ml"
    write_tiny_channels(base)
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps({"epochs": "-3"}))
    done = run_in(runtime_image, ["-v", f"{base}:/opt/ml"], ["train"])
    assert done.returncode != 0
    assert "epochs" in (base / "output" / "failure").read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_ping_on_the_bind_to_port(runtime_image: str, tmp_path: Path) -> None:
    base = tmp_path / "ml"
    write_tiny_channels(base)
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({"epochs": "1", "batch_size": "8", "backbone": "mobilenet_v3_small"})
    )
    assert run_in(runtime_image, ["-v", f"{base}:/opt/ml"], ["train"]).returncode == 0
    port = free_port()
    name = f"local-mlops-test-serve-{port}"
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--rm",
            "--name",
            name,
            "-e",
            "SAGEMAKER_BIND_TO_PORT=8085",
            "-p",
            f"127.0.0.1:{port}:8085",
            "-v",
            f"{base / 'model'}:/opt/ml/model:ro",
            runtime_image,
            "serve",
        ],
        check=True,
        capture_output=True,
    )
    try:
        deadline, status = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    status = response.status
                    break
            except OSError:
                time.sleep(0.3)
        assert status == 200
        # A PNG gets a prediction over the classes the model was trained on.
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, format="PNG")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=buffer.getvalue(),
            headers={"Content-Type": "image/png"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            prediction = json.loads(response.read())["predictions"][0]
        assert prediction["label"] in {"c0", "c1", "c2"}
        assert abs(sum(prediction["probabilities"].values()) - 1.0) < 1e-3
        # A wrong content type is refused with 415 and a JSON reason.
        wrong = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=b"{}",
            headers={"Content-Type": "text/csv"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(wrong, timeout=10)
        assert refused.value.code == 415
        assert "error" in json.loads(refused.value.read())
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def ensure_network(name: str) -> None:
    client = dockerhost.docker_client()
    if not client.networks.list(names=[name]):
        client.networks.create(name, driver="bridge")


def test_container_on_the_sagemaker_network_round_trips_an_object(runtime_image: str, s3) -> None:  # type: ignore[no-untyped-def]
    settings, url = s3
    client = __import__("local_mlops.s3", fromlist=["s3_client"]).s3_client(settings, url)
    client.put_object(Bucket=settings.bucket, Key="hello/in.txt", Body=b"from the host")
    get_url = client.generate_presigned_url(
        "get_object", Params={"Bucket": settings.bucket, "Key": "hello/in.txt"}
    )
    put_url = client.generate_presigned_url(
        "put_object",
        Params={"Bucket": settings.bucket, "Key": "hello/out.txt", "ContentType": "text/plain"},
    )
    ensure_network(SAGEMAKER_NETWORK)
    script = (
        "import sys, urllib.request as u\n"
        "body = u.urlopen(sys.argv[1], timeout=10).read()\n"
        "req = u.Request(sys.argv[2], data=body.upper(), method='PUT', headers={'Content-Type': 'text/plain'})\n"
        "u.urlopen(req, timeout=10)\n"
    )
    done = run_in(
        runtime_image, ["--network", SAGEMAKER_NETWORK], ["python3", "-c", script, get_url, put_url]
    )
    assert done.returncode == 0, done.stderr
    body = client.get_object(Bucket=settings.bucket, Key="hello/out.txt")["Body"].read()
    assert body == b"FROM THE HOST"
