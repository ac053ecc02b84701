"""``traffic``: which test split it draws from, what it draws and shifts, how it sends."""

from __future__ import annotations

import http.server
import io
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pytest
from moto.server import ThreadedMotoServer
from PIL import Image
from typer.testing import CliRunner

from local_mlops.cli.app import app
from local_mlops.errors import LocalMlopsError
from local_mlops.monitoring import traffic

BUCKET = "local-mlops"


@pytest.fixture
def s3() -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()


def split(count: int = 30, fill: int = 40) -> tuple[np.ndarray, np.ndarray]:
    images = np.full((count, 16, 16, 3), fill, dtype=np.uint8)
    return images, np.arange(count) % 3


def put_split(client: Any, execution: str, fill: int) -> str:
    images, labels = split(fill=fill)
    buffer = io.BytesIO()
    np.savez(buffer, images=images, labels=labels)
    key = f"local-mlops-pipeline/{execution}/Preprocess/output/test/data.npz"
    client.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())
    return key


def test_the_endpoints_own_run_is_preferred_then_the_newest(s3: Any) -> None:
    first = put_split(s3, "exec-a", 10)
    time.sleep(1.1)  # S3 times have whole seconds
    newest = put_split(s3, "exec-b", 20)
    s3.put_object(Bucket=BUCKET, Key="local-mlops-pipeline/exec-c/Evaluate/output/x", Body=b"")

    assert traffic.test_split_key(s3, BUCKET, "local-mlops-pipeline", ["exec-a"]) == first
    assert traffic.test_split_key(s3, BUCKET, "local-mlops-pipeline", ["gone"]) == newest
    assert traffic.test_split_key(s3, BUCKET, "other-pipeline", []) is None
    images, labels = traffic.load_split(s3, BUCKET, first)
    assert images.shape == (30, 16, 16, 3) and int(images.max()) == 10
    assert list(labels[:4]) == [0, 1, 2, 0]


def test_a_file_that_is_not_a_split_is_a_clear_error(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="p/e/Preprocess/output/test/data.npz", Body=b"not npz")
    with pytest.raises(LocalMlopsError, match="is not a test split"):
        traffic.load_split(s3, BUCKET, "p/e/Preprocess/output/test/data.npz")


def mean_brightness(bodies: list[bytes]) -> float:
    return float(np.mean([np.asarray(Image.open(io.BytesIO(b))).mean() for b in bodies]))


def test_drawn_requests_are_pngs_of_the_split_and_brightness_lifts_them() -> None:
    images, labels = split(fill=40)
    clean, truth = traffic.draw(images, labels, 50, None, None, seed=1)
    assert len(clean) == 50 and all(b.startswith(b"\x89PNG") for b in clean)
    assert set(truth) <= {0, 1, 2}
    assert mean_brightness(clean) == pytest.approx(40)
    bright, _ = traffic.draw(images, labels, 50, "brightness", 0.2, seed=1)
    assert mean_brightness(bright) == pytest.approx(40 + 0.2 * 255, abs=1)
    again, _ = traffic.draw(images, labels, 50, None, None, seed=1)
    assert again == clean  # --seed draws the same requests


def test_bad_numbers_and_shifts_are_refused_before_anything_is_sent() -> None:
    with pytest.raises(LocalMlopsError, match="--n must be"):
        traffic.check_request(0, None, 4, 10)
    with pytest.raises(LocalMlopsError, match="--rate must be above 0"):
        traffic.check_request(10, 0, 4, 10)
    with pytest.raises(LocalMlopsError, match="--concurrency"):
        traffic.check_request(10, None, 99, 10)
    with pytest.raises(LocalMlopsError, match="unknown shift 'sepia'"):
        traffic.check_drift("sepia", None)
    with pytest.raises(LocalMlopsError, match="--strength for brightness"):
        traffic.check_drift("brightness", 3.0)
    with pytest.raises(LocalMlopsError, match="--strength needs --drift"):
        traffic.check_drift(None, 0.5)
    assert traffic.check_drift("blur", None) == 1.0
    with pytest.raises(ValueError, match="this machine only"):
        traffic.send("http://10.0.0.1:8090/endpoints/e/invocations", "e", [b""])


@pytest.fixture
def model_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A stand-in endpoint on 127.0.0.1: answers JSON, fails every fifth request with a 500."""
    seen: list[dict[str, str]] = []
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                seen.append({k.lower(): v for k, v in self.headers.items()})
                number = len(seen)
            status = 500 if number % 5 == 0 else 200
            body = json.dumps({"predictions": [{"label": "1"}]}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/endpoints/e/invocations", seen
    server.shutdown()


def test_send_counts_answers_and_errors_with_one_inference_id_each(
    model_server: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = model_server
    answered: list[bool] = []
    result = traffic.send(url, "e", [b"png"] * 20, concurrency=3, on_answer=answered.append)
    summary = result.summary()
    assert (summary["sent"], summary["ok"], summary["errors"]) == (20, 16, 4)
    assert len(answered) == 20 and answered.count(False) == 4
    assert summary["latency_p50_ms"] is not None and summary["latency_p99_ms"] is not None
    assert "HTTP 500" in summary["error_samples"][0]
    ids = {h["x-amzn-sagemaker-inference-id"] for h in seen}
    assert ids == set(result.inference_ids) and len(ids) == 20
    assert {h["content-type"] for h in seen} == {"image/png"}


def test_rate_and_time_bound_the_traffic(model_server: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = model_server
    paced = traffic.send(url, "e", [b"png"] * 6, rate=10.0, concurrency=4)
    assert paced.sent == 6 and paced.seconds >= 0.45  # request k leaves at k / rate
    cut = traffic.send(url, "e", [b"png"] * 100, rate=20.0, concurrency=2, max_seconds=0.5)
    assert cut.stopped_by_time and 5 <= cut.sent < 30


def test_traffic_command_names_the_fix_for_a_missing_endpoint() -> None:
    result = CliRunner().invoke(app, ["traffic", "--endpoint", "nowhere", "--n", "5"])
    assert result.exit_code == 1
    assert "no local endpoint named 'nowhere'" in result.output
    result = CliRunner().invoke(app, ["traffic", "--n", "0"])
    assert result.exit_code == 1 and "--n must be between 1" in result.output
