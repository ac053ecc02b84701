"""The extended local transform job's records phase against a stand-in model server.

The server counts requests in flight, so the test sees ``MaxConcurrentTransforms`` honoured
(local mode's own job sends one at a time); outputs land at SageMaker's names; a record the
container does not answer with 200 fails the job naming the file.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from local_mlops.targets.localmode.transform import ExtendedLocalTransformJob, Prefetch

BUCKET = "unit-transform"


class Counting(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    in_flight = 0
    most = 0
    content_types: list[str] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        cls = type(self)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with cls.lock:
            cls.in_flight += 1
            cls.most = max(cls.most, cls.in_flight)
            cls.content_types.append(self.headers["Content-Type"])
        time.sleep(0.05)
        with cls.lock:
            cls.in_flight -= 1
        status = 500 if body == b"crash" else 200
        answer = json.dumps({"predictions": [{"label": body.decode(), "top_k": []}]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def server() -> Iterator[int]:
    Counting.in_flight = Counting.most = 0
    Counting.content_types = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()


@pytest.fixture
def s3() -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def job(s3: Any, concurrency: int, seen: list[tuple[int, int]]) -> ExtendedLocalTransformJob:
    made = ExtendedLocalTransformJob.__new__(ExtendedLocalTransformJob)
    made.local_session = SimpleNamespace(
        s3_client=s3, on_transform_record=lambda done, total, key: seen.append((done, total))
    )
    made.input_data = {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/in/"}},
        "ContentType": "application/x-image",
    }
    made.output_data = {"S3OutputPath": f"s3://{BUCKET}/out/", "Accept": "application/json"}
    made.max_concurrent = concurrency
    return made


def test_records_are_posted_concurrently_and_written_under_sagemakers_names(
    server: int, s3: Any
) -> None:
    names = [f"{'sub/' if i % 2 else ''}img-{i}.png" for i in range(12)]
    for name in names:
        s3.put_object(Bucket=BUCKET, Key=f"in/{name}", Body=name.encode())
    seen: list[tuple[int, int]] = []
    job(s3, 4, seen)._transform_all("127.0.0.1", server, 6)
    assert Counting.most == 4  # never more than MaxConcurrentTransforms, and that many at once
    assert set(Counting.content_types) == {"application/x-image"}
    for name in names:
        body = s3.get_object(Bucket=BUCKET, Key=f"out/{name}.out")["Body"].read()
        assert json.loads(body)["predictions"][0]["label"] == name
    assert sorted(seen) == [(i, 12) for i in range(1, 13)]


def test_a_record_answered_with_an_error_status_fails_the_job_naming_it(
    server: int, s3: Any
) -> None:
    s3.put_object(Bucket=BUCKET, Key="in/a.png", Body=b"fine")
    s3.put_object(Bucket=BUCKET, Key="in/b.png", Body=b"crash")
    with pytest.raises(RuntimeError, match=r"answered 500 for s3://unit-transform/in/b\.png"):
        job(s3, 2, [])._transform_all("127.0.0.1", server, 6)


def test_a_record_over_the_payload_limit_fails_the_job(server: int, s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="in/big.png", Body=b"x" * (1024 * 1024 + 1))
    with pytest.raises(RuntimeError, match="over MaxPayloadInMB=1"):
        job(s3, 1, [])._transform_all("127.0.0.1", server, 1)


class CountingS3:
    """get_object only: counts the GETs made, fails one key."""

    def __init__(self) -> None:
        self.gets: list[str] = []

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self.gets.append(Key)
        if Key == "bad":
            raise OSError("connection reset")
        return {"Body": SimpleNamespace(read=lambda: Key.encode())}


def test_inputs_download_ahead_of_their_records_within_the_window() -> None:
    s3 = CountingS3()
    keys = [f"k{i}" for i in range(10)] + ["bad"]
    inputs = Prefetch(s3, BUCKET, keys, threads=2, window=3)
    try:
        deadline = time.monotonic() + 10
        while len(s3.gets) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        assert sorted(s3.gets) == ["k0", "k1", "k2"]  # before any record, no more than 3 held
        assert inputs.take("k0") == b"k0"
        while len(s3.gets) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert s3.gets[3] == "k3"  # a taken body frees its place
        assert [inputs.take(k) for k in keys[1:10]] == [k.encode() for k in keys[1:10]]
        with pytest.raises(OSError, match="connection reset"):
            inputs.take("bad")  # a failed GET fails the record that needs it
    finally:
        inputs.close()
