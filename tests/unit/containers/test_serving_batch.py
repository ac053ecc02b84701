"""The server as batch transform runs it: unreadable records become entries, a default top_k."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from artifacts import CLASSES, write_artifact
from serving_helpers import IMAGE_SIZE, Running, invoke, png_bytes, running_server

BATCH_ENV = {"MLOPS_RECORD_ERRORS": "1", "MLOPS_TOP_K": "2", "MLOPS_MAX_BATCH_SIZE": "4"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    model_dir: Path = write_artifact(tmp_path_factory.mktemp("model"), IMAGE_SIZE, onnx=True)
    with running_server(model_dir, BATCH_ENV) as running:
        yield running


def test_an_unreadable_image_is_an_entry_not_a_failure(server: Running) -> None:
    status, body = invoke(server.port, b"\x89PNG\r\n\x1a\n truncated", "application/x-image")
    assert status == 200
    assert body["status"] == 400 and "image" in body["error"]
    assert "predictions" not in body


def test_a_readable_image_has_the_default_top_k(server: Running) -> None:
    status, body = invoke(server.port, png_bytes(), "application/x-image")
    assert status == 200
    [prediction] = body["predictions"]
    assert len(prediction["top_k"]) == 2 and prediction["top_k"][0]["label"] in CLASSES
    # The request's own custom attributes still win.
    status, body = invoke(
        server.port, png_bytes(), "image/png", **{"X-Amzn-SageMaker-Custom-Attributes": "top_k=1"}
    )
    assert len(body["predictions"][0]["top_k"]) == 1


def test_errors_that_are_not_the_records_fault_keep_their_status(server: Running) -> None:
    status, body = invoke(server.port, png_bytes(), "text/csv")
    assert status == 415 and "error" in body


def test_without_the_setting_an_unreadable_image_is_a_400(tmp_path: Path) -> None:
    model_dir = write_artifact(tmp_path / "model", IMAGE_SIZE, onnx=True)
    with running_server(model_dir) as running:
        status, body = invoke(running.port, b"not an image", "image/png")
    assert status == 400 and "error" in body
