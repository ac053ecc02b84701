"""Reading captured images back, and ground truth in SageMaker's format."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from capture_helpers import NOW, answer, image_bytes, json_request, moto_bucket, write_captures

from local_mlops.config import load_settings
from local_mlops.errors import LocalMlopsError
from local_mlops.serving import state as st
from local_mlops.serving.captured import (
    CaptureLocation,
    capture_location,
    model_classes,
    no_captures_error,
    parse_window,
    read_captured,
)
from local_mlops.serving.groundtruth import ground_truth_record, read_ground_truth

CLASSES = ["cat", "dog"]
RED, BLUE = image_bytes((220, 0, 0)), image_bytes((0, 0, 220))


@pytest.fixture
def client() -> Iterator[Any]:
    with moto_bucket("bkt") as s3:
        yield s3


def location() -> Any:
    return capture_location(load_settings({"bucket": "bkt"}), "digits")


def test_captured_images_come_back_with_the_answer_and_the_join_key(
    client: Any, tmp_path: Path
) -> None:
    write_captures(
        client,
        tmp_path,
        [("image/png", RED, answer(CLASSES, [0])), ("image/png", BLUE, answer(CLASSES, [1], 0.7))],
        inference_ids=["order-17"],
    )
    images = read_captured(client, location())
    assert [i.data for i in images] == [RED, BLUE] and not any(i.problem for i in images)
    assert [i.suggestion for i in images] == [("cat", 0.9), ("dog", 0.7)]
    assert model_classes(images) == CLASSES
    # SageMaker joins ground truth on the inferenceId the caller gave, else the eventId.
    assert images[0].join_key == "order-17" and images[1].join_key == images[1].event_id
    stamp = NOW.strftime("%Y-%m-%dT%H-%M-%SZ")
    assert images[0].key == f"AllTraffic/{stamp}-{images[0].event_id}.png"
    assert images[0].capture_uri.startswith("s3://bkt/datacapture/digits/AllTraffic/")


def test_a_json_request_gives_one_image_per_instance(client: Any, tmp_path: Path) -> None:
    body = json_request(RED, image_bytes((0, 200, 0), format="JPEG"))
    write_captures(client, tmp_path, [("application/json", body, answer(CLASSES, [0, 1]))])
    first, second = read_captured(client, location())
    assert (first.position, second.position, first.count) == (0, 1, 2)
    assert first.key.endswith("-0.png") and second.key.endswith("-1.jpg")
    assert first.join_key == second.join_key and second.suggestion == ("dog", 0.9)


def test_undecodable_captures_are_listed_with_the_reason(client: Any, tmp_path: Path) -> None:
    write_captures(
        client,
        tmp_path,
        [
            ("image/png", RED[:30], answer(CLASSES, [0])),  # truncated
            ("text/csv", b"1,2,3", b"{}"),
            ("application/json", b'{"rows": []}', b"{}"),
            ("application/json", json_request(RED)[:-2] + b"!}", b"{}"),
            ("image/png", RED, b'{"error": "boom"}'),  # fine image, error answer
        ],
    )
    client.put_object(
        Bucket="bkt",
        Key="datacapture/digits/AllTraffic/2026/01/01/00/junk.jsonl",
        Body=b"not json\n",
    )
    images = read_captured(client, location())
    problems = [i.problem for i in images]
    assert problems[0] == "line 1 is not a capture record"  # the junk file is the oldest
    assert "not a decodable image" in problems[1]
    assert problems[2] == "the request is text/csv, not an image"
    assert 'no {"instances": [...]}' in problems[3] and 'no {"instances"' in problems[4]
    assert problems[5] == "" and images[5].suggestion is None


def test_an_image_a_browser_cannot_show_is_re_encoded_as_png(client: Any, tmp_path: Path) -> None:
    tiff = image_bytes((10, 20, 30), format="TIFF")
    write_captures(client, tmp_path, [("application/x-image", tiff, answer(CLASSES, [0]))])
    (image,) = read_captured(client, location())
    assert image.key.endswith(".png") and image.data.startswith(b"\x89PNG")


def test_the_window_keeps_recent_captures_only(client: Any, tmp_path: Path) -> None:
    old = NOW - dt.timedelta(hours=3)
    write_captures(client, tmp_path, [("image/png", RED, answer(CLASSES, [0]))], when=old)
    write_captures(client, tmp_path, [("image/png", BLUE, answer(CLASSES, [1]))])
    recent = read_captured(client, location(), since=NOW - parse_window("1h"))
    assert [i.data for i in recent] == [BLUE]
    # inferenceTime has whole seconds
    assert len(read_captured(client, location(), since=old.replace(microsecond=0))) == 2
    assert parse_window("30m") == dt.timedelta(minutes=30)
    assert parse_window("7d") == dt.timedelta(days=7)
    for bad in ("0h", "1w", "soon", ""):
        with pytest.raises(LocalMlopsError, match="not a duration"):
            parse_window(bad)


def test_the_capture_location_follows_the_endpoints_capture_config() -> None:
    settings = load_settings({"bucket": "bkt"})
    unknown = capture_location(settings, "digits")
    assert (unknown.bucket, unknown.prefix, unknown.known) == ("bkt", "datacapture", False)
    store = st.EndpointStore(settings.state_path)
    store.root.mkdir(parents=True)
    endpoint = st.Endpoint("digits", "InService", [], st.DataCapture(destination="s3://cap/x/y"))
    (store.root / "digits.json").write_text(json.dumps(endpoint.to_dict()))
    known = capture_location(settings, "digits")
    assert (known.bucket, known.prefix, known.known) == ("cap", "x/y", True)
    assert known.uri == "s3://cap/x/y/digits/"
    with pytest.raises(LocalMlopsError, match="not a valid endpoint name"):
        capture_location(settings, "no/such")


def test_no_captures_errors_tell_an_unknown_endpoint_from_a_silent_one() -> None:
    settings = load_settings({"bucket": "bkt"})
    unknown = no_captures_error(capture_location(settings, "digits"), None)
    assert "no endpoint named 'digits'" in unknown.message
    assert "endpoints list" in (unknown.fix or "")
    known = CaptureLocation("digits", "bkt", "datacapture", True)
    silent = no_captures_error(known, None)
    assert silent.message == (
        "endpoint digits has captured no requests (under s3://bkt/datacapture/digits/)"
    )
    assert "local-mlops predict" in (silent.fix or "")
    for where in (known, capture_location(settings, "digits")):
        quiet = no_captures_error(where, NOW)
        assert f"no requests of endpoint digits captured since {NOW:%Y-%m-%d %H:%M}" in (
            quiet.message
        )
        assert "widen --window" in (quiet.fix or "")


def test_ground_truth_records_have_sagemakers_shape(client: Any) -> None:
    record = ground_truth_record("order-17", ["cat"])
    assert record == {
        "groundTruthData": {"data": "cat", "encoding": "CSV", "observedContentType": "text/csv"},
        "eventMetadata": {"eventId": "order-17"},
        "eventVersion": "0",
    }
    lines = [
        ground_truth_record("a", ["cat", "", "dog"]),
        {"groundTruthData": {"data": 7}, "eventMetadata": {"eventId": "b"}},  # not CSV text
        ground_truth_record("c", ["cat"]),
    ]
    client.put_object(
        Bucket="bkt",
        Key="groundtruth/digits/2026/12/01/20/first.jsonl",
        Body=("\n".join(json.dumps(r) for r in lines) + "\nnot json\n").encode(),
    )
    later = json.dumps(ground_truth_record("c", ["dog"]))
    client.put_object(Bucket="bkt", Key="groundtruth/digits/2026/12/01/21/x.jsonl", Body=later)
    client.put_object(Bucket="bkt", Key="groundtruth/other/2026/12/01/21/x.jsonl", Body=later)
    assert read_ground_truth(client, "bkt", "digits") == {
        ("a", 0): "cat",
        ("a", 2): "dog",
        ("c", 0): "dog",  # the later file wins
    }
