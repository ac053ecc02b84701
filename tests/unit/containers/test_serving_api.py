"""The inference server's contract: routes, content types, top-k, batching, failures, backends."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from artifacts import CLASSES, write_artifact
from conftest import pattern_image
from PIL import Image
from serving_helpers import (
    IMAGE_SIZE,
    Health,
    Running,
    expected_probabilities,
    invoke,
    npy_bytes,
    png_bytes,
    request,
    running_server,
)

from mlops_container.serving import backends
from mlops_container.serving.app import ServingApp
from mlops_container.serving.batcher import Batcher
from mlops_container.serving.settings import ServerSettings


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The artifact as SageMaker hands it to hosting: model.tar.gz with model.onnx inside."""
    return write_artifact(tmp_path_factory.mktemp("model"), IMAGE_SIZE, archive=True, onnx=True)


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_artifact(tmp_path_factory.mktemp("files"), IMAGE_SIZE, onnx=True)


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[Running]:
    with running_server(model_dir, {"MLOPS_MAX_BATCH_SIZE": "8"}) as running:
        yield running


@pytest.fixture(scope="module")
def port(server: Running) -> int:
    return server.port


def probabilities(prediction: dict) -> np.ndarray:
    return np.array([prediction["probabilities"][c] for c in CLASSES])


def test_ping_and_execution_parameters(port: int) -> None:
    assert request(port, "GET", "/ping")[:2] == (
        200,
        {"status": "healthy", "backend": "onnxruntime"},
    )
    status, body, _ = request(port, "GET", "/execution-parameters")
    assert status == 200
    assert body == {
        "MaxConcurrentTransforms": 8,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


@pytest.mark.parametrize("content_type", ["image/png", "application/x-image", "image/png; q=1"])
def test_png_matches_the_pytorch_model(port: int, files_dir: Path, content_type: str) -> None:
    png = png_bytes(2, 5)
    status, body = invoke(port, png, content_type)
    assert status == 200
    (prediction,) = body["predictions"]
    expected = expected_probabilities(files_dir, png)
    assert np.abs(probabilities(prediction) - expected).max() < 1e-4
    assert (
        prediction["index"] == int(expected.argmax())
        and prediction["label"] == CLASSES[prediction["index"]]
    )
    assert prediction["top_k"] == [
        {
            "label": prediction["label"],
            "index": prediction["index"],
            "probability": prediction["probability"],
        }
    ]


def test_jpeg_of_another_size_and_mode_is_resized(port: int, files_dir: Path) -> None:
    buffer = io.BytesIO()
    pattern_image(2, 1, 40, "RGB").save(buffer, format="JPEG")
    status, body = invoke(port, buffer.getvalue(), "image/jpeg")
    assert status == 200
    expected = expected_probabilities(files_dir, buffer.getvalue())
    assert np.abs(probabilities(body["predictions"][0]) - expected).max() < 1e-4


def test_top_k_from_custom_attributes(port: int) -> None:
    headers = {
        "X-Amzn-SageMaker-Custom-Attributes": "trace=abc; top_k=3",
        "Accept": "application/json",
    }
    status, body = invoke(port, png_bytes(), "image/png", **headers)
    assert status == 200
    top = body["predictions"][0]["top_k"]
    assert [entry["label"] for entry in top] == sorted(
        CLASSES, key=lambda c: -body["predictions"][0]["probabilities"][c]
    )
    assert [entry["probability"] for entry in top] == sorted(
        (e["probability"] for e in top), reverse=True
    )
    headers["X-Amzn-SageMaker-Custom-Attributes"] = "top_k=50"  # more than there are classes
    assert len(invoke(port, png_bytes(), "image/png", **headers)[1]["predictions"][0]["top_k"]) == 3


def test_json_mixes_base64_objects_and_arrays_in_order(port: int, files_dir: Path) -> None:
    pngs = [png_bytes(label, 2) for label in range(3)]
    pixels = np.asarray(Image.open(io.BytesIO(pngs[2])).convert("RGB"))
    instances = [
        base64.b64encode(pngs[0]).decode(),
        {"b64": base64.b64encode(pngs[1]).decode()},
        pixels.tolist(),  # integers: 0..255
        (pixels / 255.0).tolist(),  # floats: 0..1
    ]
    status, body = invoke(port, json.dumps({"instances": instances}).encode(), "application/json")
    assert status == 200 and len(body["predictions"]) == 4
    for prediction, png in zip(body["predictions"], [*pngs, pngs[2]], strict=True):
        assert (
            np.abs(probabilities(prediction) - expected_probabilities(files_dir, png)).max() < 1e-4
        )


def test_npy_hwc_and_nhwc_in_uint8_and_float(port: int, files_dir: Path) -> None:
    pngs = [png_bytes(label, 4) for label in range(3)]
    batch = np.stack([np.asarray(Image.open(io.BytesIO(p)).convert("RGB")) for p in pngs])
    expected = [expected_probabilities(files_dir, p) for p in pngs]
    for array in (batch, batch.astype(np.float32) / 255, batch.astype(np.float64) / 255):
        status, body = invoke(port, npy_bytes(array), "application/x-npy")
        assert status == 200 and len(body["predictions"]) == 3
        for prediction, want in zip(body["predictions"], expected, strict=True):
            assert np.abs(probabilities(prediction) - want).max() < 1e-4
    status, body = invoke(port, npy_bytes(batch[1]), "application/x-npy")  # one HWC image
    assert (
        status == 200 and np.abs(probabilities(body["predictions"][0]) - expected[1]).max() < 1e-4
    )
    gray = batch[:, :, :, :1]  # one channel is repeated to RGB
    assert invoke(port, npy_bytes(gray), "application/x-npy")[0] == 200


def test_a_request_larger_than_the_max_batch_is_answered_whole(port: int) -> None:
    batch = np.zeros((20, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    status, body = invoke(port, npy_bytes(batch), "application/x-npy")
    assert status == 200 and len(body["predictions"]) == 20


def test_concurrent_requests_share_forwards(server: Running) -> None:
    png = png_bytes()
    before = (server.app.batcher.forwards, server.app.batcher.images)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: invoke(server.port, png, "image/png"), range(64)))
    assert all(status == 200 for status, _ in results)
    assert len({json.dumps(body) for _, body in results}) == 1  # everyone got the same answer
    forwards = server.app.batcher.forwards - before[0]
    assert server.app.batcher.images - before[1] == 64 and forwards < 64


class SlowBackend:
    """Records each forward's batch size; blocks until released."""

    name = "slow"

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.release = threading.Event()

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.release.wait(10)
        self.sizes.append(len(batch))
        return np.zeros((len(batch), 3), np.float32)


def test_a_lone_request_runs_at_once_and_queued_ones_share_the_next_forward() -> None:
    backend = SlowBackend()
    batcher = Batcher(backend.run, max_batch=8)

    async def scenario() -> None:
        backend.release.set()
        await batcher.infer(np.zeros((1, 3, 2, 2), np.float32))  # alone: no waiting window
        backend.release.clear()
        first = asyncio.ensure_future(batcher.infer(np.zeros((1, 3, 2, 2), np.float32)))
        await asyncio.sleep(0.2)  # the worker is now busy with `first`
        rest = [
            asyncio.ensure_future(batcher.infer(np.zeros((1, 3, 2, 2), np.float32)))
            for _ in range(10)
        ]
        await asyncio.sleep(0.2)
        backend.release.set()
        await asyncio.gather(first, *rest)

    asyncio.run(scenario())
    batcher.stop()
    assert backend.sizes == [1, 1, 8, 2]


class FailingOnce:
    name = "flaky"

    def __init__(self, inner: backends.Backend) -> None:
        self.inner, self.failed = inner, False

    def run(self, batch: np.ndarray) -> np.ndarray:
        if not self.failed:
            self.failed = True
            raise RuntimeError("simulated kernel failure")
        return self.inner.run(batch)


def test_unexpected_error_is_a_500_json_with_a_log_line(
    files_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = backends.load(files_dir)
    model.backend = FailingOnce(model.backend)
    app = ServingApp(model, ServerSettings())
    with running_server(files_dir, app=app) as running, caplog.at_level(logging.ERROR):
        status, body = invoke(running.port, png_bytes(), "image/png")
        assert status == 500 and "RuntimeError" in body["error"]
        assert "simulated kernel failure" in caplog.text
        Health(files_dir).check(running.port)


def test_artifact_without_onnx_falls_back_to_pytorch(tmp_path: Path) -> None:
    model_dir = write_artifact(tmp_path / "old", IMAGE_SIZE)  # trained before ONNX export
    with running_server(model_dir) as running:
        assert request(running.port, "GET", "/ping")[1]["backend"] == "torch"
        Health(model_dir).check(running.port)


def test_onnx_backend_required_without_onnx_names_the_fix(tmp_path: Path) -> None:
    model_dir = write_artifact(tmp_path / "old", IMAGE_SIZE)
    with pytest.raises(backends.UserError, match="has no model.onnx"):
        backends.load(model_dir, "onnx")


def test_bad_setting_names_the_variable() -> None:
    with pytest.raises(ValueError, match="MLOPS_MAX_BATCH_SIZE='lots' is not a number"):
        ServerSettings.from_env({"MLOPS_MAX_BATCH_SIZE": "lots"})
    with pytest.raises(ValueError, match="MLOPS_SERVING_BACKEND='tf'"):
        ServerSettings.from_env({"MLOPS_SERVING_BACKEND": "tf"})


def test_keep_alive_connection_serves_many_requests(port: int) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    started = time.monotonic()
    for _ in range(20):
        connection.request("POST", "/invocations", png_bytes(), {"Content-Type": "image/png"})
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["predictions"]
    connection.close()
    assert time.monotonic() - started < 10


def test_archive_without_onnx_is_extracted_for_pytorch(tmp_path: Path) -> None:
    model = backends.load(write_artifact(tmp_path / "old", IMAGE_SIZE, archive=True))
    assert model.backend.name == "torch" and model.classes == CLASSES


def test_corrupt_archive_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "model.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(backends.UserError, match="model.tar.gz is not a readable tar.gz"):
        backends.load(tmp_path)


def test_json_lines_answer_a_line_per_record_and_a_bad_line_spoils_no_other(
    port: int, files_dir: Path
) -> None:
    import http.client

    good = [png_bytes(2, 5), png_bytes(7, 1)]
    lines = [
        json.dumps({"name": "a.png", "b64": base64.b64encode(good[0]).decode()}),
        json.dumps({"name": "broken.png", "b64": base64.b64encode(b"not an image").decode()}),
        "not json at all",
        json.dumps({"name": "sub/b.png", "b64": base64.b64encode(good[1]).decode()}),
    ]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"}
    connection.request("POST", "/invocations", ("\n".join(lines) + "\n").encode(), headers)
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    assert response.status == 200, raw[:300]
    assert response.getheader("content-type") == "application/jsonlines"
    answers = [json.loads(line) for line in raw.splitlines()]
    assert [a["name"] for a in answers] == ["a.png", "broken.png", "line 2", "sub/b.png"]
    assert answers[1]["status"] == 400 and "broken.png" in answers[1]["error"]
    assert answers[2]["status"] == 400 and "predictions" not in answers[2]
    for answer, png in zip([answers[0], answers[3]], good, strict=True):
        (prediction,) = answer["predictions"]
        expected = expected_probabilities(files_dir, png)
        assert np.abs(probabilities(prediction) - expected).max() < 1e-4


def test_json_lines_with_an_accept_that_excludes_them_is_406(port: int) -> None:
    body = json.dumps({"name": "a.png", "b64": base64.b64encode(png_bytes()).decode()}).encode()
    status, answer = invoke(port, body, "application/jsonlines", Accept="application/json")
    assert status == 406 and "application/jsonlines" in answer["error"]
