"""Labeling captured images: every label saved is SageMaker ground truth in the bucket."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from capture_helpers import NOW, answer, image_bytes, json_request, moto_bucket, write_captures
from typer.testing import CliRunner

from local_mlops.cli.app import app
from local_mlops.config import Settings, load_settings
from local_mlops.errors import LocalMlopsError
from local_mlops.labeling import LabelingSession
from local_mlops.labeling.captures import GROUND_TRUTH_FILE, CaptureSource
from local_mlops.serving.captured import capture_location

CLASSES = ["cat", "dog"]
GT_KEY = re.compile(r"^groundtruth/digits/\d{4}/\d{2}/\d{2}/\d{2}/local-mlops-labels\.jsonl$")


@pytest.fixture
def client() -> Iterator[Any]:
    with moto_bucket("bkt") as s3:
        yield s3


@pytest.fixture
def settings() -> Settings:
    return load_settings({"bucket": "bkt"})


def open_session(
    client: Any, settings: Settings, since: dt.datetime | None = None, bucket: str = "bkt"
) -> tuple[CaptureSource, LabelingSession]:
    source = CaptureSource(
        client, capture_location(settings, "digits"), bucket, settings.state_path, since
    )
    session = LabelingSession(source, source.classes or None, "capture-digits")
    session.open()
    return source, session


def ground_truth(client: Any, bucket: str = "bkt") -> dict[str, list[dict[str, Any]]]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix="groundtruth/").get("Contents", [])
    files = {}
    for obj in listed:
        body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
        files[obj["Key"]] = [json.loads(line) for line in body.splitlines()]
    return files


def truth_data(client: Any) -> dict[str, str]:
    return {
        r["eventMetadata"]["eventId"]: r["groundTruthData"]["data"]
        for lines in ground_truth(client).values()
        for r in lines
    }


def test_each_label_is_written_as_ground_truth_and_undo_takes_it_back(
    client: Any, settings: Settings, tmp_path: Path
) -> None:
    red, blue = image_bytes((220, 0, 0)), image_bytes((0, 0, 220))
    write_captures(
        client,
        tmp_path,
        [("image/png", red, answer(CLASSES, [0])), ("image/png", blue, answer(CLASSES, [0]))],
        inference_ids=["order-1"],
    )
    source, session = open_session(client, settings)
    first, second = session.keys
    assert session.classes == CLASSES  # the model's, from its answers
    assert source.read(first) == red
    session.label(first, 1)  # the model said cat; the person says dog

    (key,) = ground_truth(client)
    assert GT_KEY.match(key) and key.endswith(
        f"{dt.datetime.now(dt.UTC):%Y/%m/%d/%H}/" + GROUND_TRUTH_FILE
    )
    assert ground_truth(client)[key] == [
        {
            "groundTruthData": {
                "data": "dog",
                "encoding": "CSV",
                "observedContentType": "text/csv",
            },
            "eventMetadata": {"eventId": "order-1"},  # the capture's inferenceId
            "eventVersion": "0",
        }
    ]
    session.label(second, 0)
    event_id = source.images[second].event_id  # no inferenceId: the eventId
    assert truth_data(client) == {"order-1": "dog", event_id: "cat"}

    session.undo()
    assert truth_data(client) == {"order-1": "dog"}
    session.undo()
    assert ground_truth(client) == {}  # no label left: no file left
    summary = session.close()
    assert summary["manifest"] == "s3://bkt/groundtruth/digits/"


def test_the_models_answer_is_the_suggestion(
    client: Any, settings: Settings, tmp_path: Path
) -> None:
    write_captures(
        client, tmp_path, [("image/png", image_bytes((9, 9, 9)), answer(CLASSES, [1], 0.75))]
    )
    _, session = open_session(client, settings)
    (item,) = session.state()["items"]
    assert item["suggestion"] == {"class": "dog", "label": 1, "probability": 0.75}
    session.close()


def test_images_of_one_json_request_share_one_ground_truth_line(
    client: Any, settings: Settings, tmp_path: Path
) -> None:
    body = json_request(image_bytes((1, 2, 3)), image_bytes((4, 5, 6)), image_bytes((7, 8, 9)))
    write_captures(client, tmp_path, [("application/json", body, answer(CLASSES, [0, 0, 1]))])
    source, session = open_session(client, settings)
    keys = session.keys
    session.label(keys[1], 1)
    join = source.images[keys[1]].join_key
    assert truth_data(client) == {join: ",dog,"}
    session.label(keys[0], 0)
    session.label(keys[2], 0)
    assert truth_data(client) == {join: "cat,dog,cat"}
    session.close()


def test_labels_outside_a_later_window_stay_in_the_ground_truth(
    client: Any, settings: Settings, tmp_path: Path
) -> None:
    old = NOW - dt.timedelta(hours=5)
    write_captures(
        client, tmp_path, [("image/png", image_bytes((1, 1, 1)), answer(CLASSES, [0]))], when=old
    )
    write_captures(client, tmp_path, [("image/png", image_bytes((2, 2, 2)), answer(CLASSES, [1]))])
    source, session = open_session(client, settings)
    session.label(session.keys[0], 0)
    old_id = source.images[session.keys[0]].event_id
    session.close()

    source, session = open_session(client, settings, since=NOW - dt.timedelta(hours=1))
    assert len(session.keys) == 1
    session.label(session.keys[0], 1)
    new_id = source.images[session.keys[0]].event_id
    assert truth_data(client) == {old_id: "cat", new_id: "dog"}
    session.close()


def test_a_failed_ground_truth_upload_is_an_error_and_the_label_is_kept(
    client: Any, settings: Settings, tmp_path: Path
) -> None:
    write_captures(client, tmp_path, [("image/png", image_bytes((3, 3, 3)), answer(CLASSES, [0]))])
    client.create_bucket(Bucket="truth")
    _, session = open_session(client, settings, bucket="truth")
    client.delete_bucket(Bucket="truth")
    key = session.keys[0]
    with pytest.raises(LocalMlopsError) as failure:
        session.label(key, 0)
    assert "the labels are saved on this machine" in failure.value.message
    assert "written again on the next label or restart" in (failure.value.fix or "")
    assert session.labels[key].index == 0  # journaled before the upload
    with pytest.raises(LocalMlopsError):
        session.close()
    client.create_bucket(Bucket="truth")
    _, session = open_session(client, settings, bucket="truth")  # a restart writes it
    assert session.counts()["labeled"] == 1
    assert list(ground_truth(client, "truth")) and session.close()


def test_undecodable_captures_are_left_out_and_listed(
    client: Any, settings: Settings, tmp_path: Path
) -> None:
    good = image_bytes((5, 5, 5))
    write_captures(
        client,
        tmp_path,
        [
            ("image/png", b"\x89PNG broken", answer(CLASSES, [0])),
            ("image/png", good, answer(CLASSES, [0])),
        ],
    )
    source, session = open_session(client, settings)
    assert len(session.keys) == 1 and source.read(session.keys[0]) == good
    (bad,) = source.undecodable
    assert "not a decodable image" in bad.problem
    assert "1 undecodable" in source.description
    session.close()


def test_no_decodable_image_and_no_capture_are_clear_errors(
    client: Any, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(LocalMlopsError, match="no endpoint named 'digits'"):
        open_session(client, settings)
    write_captures(client, tmp_path, [("text/csv", b"1,2", b"{}")])
    with pytest.raises(LocalMlopsError) as failure:
        open_session(client, settings)
    assert "none of the 1 captured images of digits can be shown" in failure.value.message
    assert "text/csv, not an image" in failure.value.message


runner = CliRunner()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["label", "./pets", "--from-capture", "digits"], "a FOLDER and --from-capture both given"),
        (["label"], "nothing to label"),
        (["label", "./pets", "--window", "1h"], "--window is for --from-capture"),
        (["label", "--from-capture", "digits", "--window", "soon"], "not a duration"),
    ],
)
def test_label_from_capture_argument_errors(argv: list[str], message: str) -> None:
    result = runner.invoke(app, argv, env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert message in result.output and "fix:" in result.output
