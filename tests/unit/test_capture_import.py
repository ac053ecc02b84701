"""`data import capture`: the join of captures and ground truth, the folder the importer gets,
and every error before Docker is needed (the import itself: tests/integration)."""

from __future__ import annotations

import csv
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from capture_helpers import answer, image_bytes, json_request, moto_bucket, write_captures
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from local_mlops.cli.app import app
from local_mlops.config import Settings, load_settings
from local_mlops.errors import LocalMlopsError
from local_mlops.pipeline.capture_import import labeled_captures, write_folder
from local_mlops.serving.groundtruth import ground_truth_record

CLASSES = ["cat", "dog"]
runner = CliRunner()


@pytest.fixture
def client() -> Iterator[Any]:
    with moto_bucket("bkt") as s3:
        yield s3


@pytest.fixture
def settings() -> Settings:
    return load_settings({"bucket": "bkt"})


def put_truth(client: Any, *records: dict[str, Any]) -> None:
    body = "".join(json.dumps(r) + "\n" for r in records)
    client.put_object(Bucket="bkt", Key="groundtruth/digits/2026/12/01/20/t.jsonl", Body=body)


def test_labeled_captures_join_ground_truth_by_request_and_position(
    client: Any, settings: Settings, tmp_path: Path
) -> None:
    red, green, blue = (image_bytes(c) for c in ((200, 0, 0), (0, 200, 0), (0, 0, 200)))
    write_captures(
        client,
        tmp_path / "spool",
        [
            ("image/png", red, answer(CLASSES, [0])),
            ("application/json", json_request(green, blue), answer(CLASSES, [0, 0])),
            ("image/png", b"\x89PNG broken", answer(CLASSES, [1])),
            ("image/png", image_bytes((9, 9, 9)), answer(CLASSES, [1])),  # never labeled
        ],
        inference_ids=["req-red", "req-pair", "req-broken"],
    )
    put_truth(
        client,
        ground_truth_record("req-red", ["cat"]),
        ground_truth_record("req-pair", ["", "dog"]),
        ground_truth_record("req-broken", ["dog"]),
        ground_truth_record("req-red", ["dog"]),  # relabeled: the later line wins
    )
    found = labeled_captures(settings, client, "digits")
    assert found.captured == 5
    assert [(image.data, label) for image, label in found.labeled] == [(red, "dog"), (blue, "dog")]
    assert [image.join_key for image in found.undecodable] == ["req-broken"]
    assert found.counts() == {"dog": 2}

    labels = write_folder(found, tmp_path / "out")
    rows = list(csv.reader(labels.open()))
    red_image, blue_image = (image for image, _ in found.labeled)
    assert rows == [
        ["filename", "class"],
        [f"{red_image.event_id}.png", "dog"],
        [f"{blue_image.event_id}-1.png", "dog"],
    ]
    assert (tmp_path / "out" / "images" / rows[2][0]).read_bytes() == blue


def test_no_labels_no_captures_and_an_unknown_endpoint_are_clear_errors(
    client: Any, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(LocalMlopsError) as unknown:
        labeled_captures(settings, client, "digits")
    assert "no endpoint named 'digits'" in unknown.value.message
    write_captures(client, tmp_path, [("image/png", image_bytes((1, 1, 1)), answer(CLASSES, [0]))])
    put_truth(client, ground_truth_record("someone-else", ["cat"]))
    with pytest.raises(LocalMlopsError) as unlabeled:
        labeled_captures(settings, client, "digits")
    assert "none of the 1 captured images of digits is labeled" in unlabeled.value.message
    assert unlabeled.value.fix == "label some: local-mlops label --from-capture digits"


@pytest.fixture
def s3_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    monkeypatch.setenv("LOCAL_MLOPS_S3_ENDPOINT", url)
    monkeypatch.setenv("LOCAL_MLOPS_BUCKET", "bkt")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    yield url
    server.stop()


def test_the_command_names_an_unknown_endpoint_in_one_red_line(s3_url: str) -> None:
    result = runner.invoke(
        app, ["data", "import", "capture", "--endpoint", "nope"], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 1
    assert "no endpoint named 'nope'" in result.output and "endpoints list" in result.output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["capture"], "needs the endpoint"),
        (["capture", "--endpoint", "digits", "--data", "x"], "--data do not apply"),
        (["capture", "--endpoint", "digits", "--per-class", "9"], "--per-class do not apply"),
        (["digits", "--endpoint", "digits"], "--endpoint is for `data import capture`"),
        (["capture", "--endpoint", "bad/name"], "not a valid endpoint name"),
    ],
)
def test_import_capture_argument_errors(argv: list[str], message: str, s3_url: str) -> None:
    result = runner.invoke(app, ["data", "import", *argv], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert message in result.output and "fix:" in result.output
