"""Data capture: SageMaker's record format and file layout, sampling, and no record lost."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from serving_fakes import FakeModel, FolderBucket, RouterThread, one_fleet_endpoint, runtime

from local_mlops.serving import state as st
from local_mlops.serving.capture import Capture, CaptureWriter, LineEncoder, capture_record

KEY = re.compile(
    r"^bkt/datacapture/digits/AllTraffic/\d{4}/\d{2}/\d{2}/\d{2}/\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl$"
)


def records(bucket: FolderBucket) -> list[dict]:
    return [json.loads(line) for f in bucket.files() for line in f.read_text().splitlines()]


def a_capture(n: int = 0, request_type: str = "image/png") -> Capture:
    return Capture(
        "digits",
        "AllTraffic",
        "s3://bkt/datacapture",
        ("application/json",),
        request_type,
        b"\x89PNG" + bytes([n]),
        "application/json",
        b'{"predictions": []}',
        f"id-{n}",
        dt.datetime(2026, 12, 1, 20, 1, 48, 123000, tzinfo=dt.UTC),
    )


def test_a_record_has_sagemakers_shape() -> None:
    record = capture_record(a_capture(3))
    assert record["eventVersion"] == "0"
    endpoint_input = record["captureData"]["endpointInput"]
    assert endpoint_input == {
        "observedContentType": "image/png",
        "mode": "INPUT",
        "data": base64.b64encode(b"\x89PNG\x03").decode(),
        "encoding": "BASE64",
    }
    assert record["captureData"]["endpointOutput"] == {
        "observedContentType": "application/json",
        "mode": "OUTPUT",
        "data": '{"predictions": []}',
        "encoding": "JSON",
    }
    assert record["eventMetadata"]["inferenceId"] == "id-3"
    assert record["eventMetadata"]["inferenceTime"] == "2026-12-01T20:01:48Z"
    assert re.fullmatch(r"[0-9a-f-]{36}", record["eventMetadata"]["eventId"])


def test_n_requests_through_the_router_give_n_records_in_the_documented_layout(
    store: st.EndpointStore, router: RouterThread, bucket: FolderBucket
) -> None:
    model = FakeModel(1)
    try:
        one_fleet_endpoint(store, "digits", [model])
        router.reload()
        client = runtime(router.url)
        for n in range(25):
            client.invoke_endpoint(
                EndpointName="digits",
                Body=b"img%d" % n,
                ContentType="image/png",
                InferenceId=f"r{n}",
            )
        router.flush()
    finally:
        model.close()
    found = records(bucket)
    assert len(found) == 25
    assert sorted(r["eventMetadata"]["inferenceId"] for r in found) == sorted(
        f"r{n}" for n in range(25)
    )
    for path in bucket.files():
        assert KEY.match(path.relative_to(bucket.root).as_posix())


def test_sampling_zero_captures_nothing(
    store: st.EndpointStore, router: RouterThread, bucket: FolderBucket
) -> None:
    model = FakeModel(1)
    try:
        one_fleet_endpoint(store, "digits", [model], sampling=0)
        router.reload()
        for _ in range(5):
            runtime(router.url).invoke_endpoint(
                EndpointName="digits", Body=b"x", ContentType="image/png"
            )
        router.flush()
    finally:
        model.close()
    assert records(bucket) == []


def test_close_flushes_every_buffered_record(tmp_path: Path, bucket: FolderBucket) -> None:
    writer = CaptureWriter(tmp_path / "spool", bucket, max_age_seconds=3600)
    writer.start()
    for n in range(200):
        writer.record(a_capture(n % 256))
    assert bucket.files() == []  # neither full nor old: still buffered
    writer.close()
    assert len(records(bucket)) == 200


def test_a_full_buffer_is_written_without_waiting_for_its_age(
    tmp_path: Path, bucket: FolderBucket
) -> None:
    import time

    writer = CaptureWriter(tmp_path / "spool", bucket, max_records=10, max_age_seconds=3600)
    writer.start()
    for n in range(10):
        writer.record(a_capture(n))
    deadline = time.monotonic() + 5
    while not bucket.files() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(records(bucket)) == 10
    writer.close()


def test_a_failed_upload_stays_spooled_and_goes_up_with_the_next_flush(
    tmp_path: Path, bucket: FolderBucket
) -> None:
    outage = {"on": True}

    def flaky(path: Path, name: str, key: str) -> None:
        if outage["on"]:
            raise ConnectionError("S3 is away")
        bucket(path, name, key)

    writer = CaptureWriter(tmp_path / "spool", flaky, max_age_seconds=3600)
    for n in range(3):
        writer.record(a_capture(n))
    writer.flush()
    assert bucket.files() == [] and writer.upload_errors == 1
    assert len(list((tmp_path / "spool").rglob("*.jsonl"))) == 1
    outage["on"] = False
    writer.flush()
    assert len(records(bucket)) == 3
    assert list((tmp_path / "spool").rglob("*.jsonl")) == []


@pytest.mark.parametrize("content_type", ["text/csv", "application/json"])
def test_text_content_types_are_kept_as_text(content_type: str) -> None:
    capture = a_capture(0, content_type)
    capture = dataclasses.replace(capture, request_body=b"1,2,3")
    encoded = capture_record(capture)["captureData"]["endpointInput"]
    assert encoded["data"] == "1,2,3"
    assert encoded["encoding"] == ("CSV" if content_type == "text/csv" else "JSON")


@pytest.mark.parametrize(
    ("request_type", "request_body", "inference_id"),
    [
        ("image/png", b"\x89PNG\x00\xff", "id-1"),
        ("application/json; charset=utf-8", '{"x": "caf\u00e9 \\"q\\"\n"}'.encode(), ""),
        ("text/csv", b"1,2,\t3\r\n", 'quote " and \\ back'),
        ("application/json", b"\xff not utf-8", "id-4"),  # undecodable JSON: base64
        ("image/png", b"", "\u00fcnicode-id"),
    ],
)
def test_the_files_lines_are_the_records_documents(
    request_type: str, request_body: bytes, inference_id: str
) -> None:
    capture = dataclasses.replace(
        a_capture(0),
        request_type=request_type,
        request_body=request_body,
        inference_id=inference_id,
    )
    line = LineEncoder().line(capture)
    assert line.endswith("\n") and "\n" not in line[:-1]
    written, expected = json.loads(line), capture_record(capture)
    assert re.fullmatch(r"[0-9a-f-]{36}", written["eventMetadata"].pop("eventId"))
    expected["eventMetadata"].pop("eventId")
    assert written == expected


def test_the_encoder_keeps_each_records_own_second() -> None:
    encoder = LineEncoder()
    first = a_capture(0)
    later = dataclasses.replace(first, time=first.time + dt.timedelta(seconds=61))
    times = [
        json.loads(encoder.line(c))["eventMetadata"]["inferenceTime"] for c in (first, later, first)
    ]
    assert times == ["2026-12-01T20:01:48Z", "2026-12-01T20:02:49Z", "2026-12-01T20:01:48Z"]


def test_every_line_gets_its_own_random_version_4_event_id() -> None:
    import uuid

    encoder = LineEncoder()
    ids = [json.loads(encoder.line(a_capture(0)))["eventMetadata"]["eventId"] for _ in range(600)]
    assert len(set(ids)) == len(ids)  # more than one batch of drawn ids
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
