"""capture -> label -> import -> retrain, as a user runs it: captures written by the router's own
writer into the emulator's bucket, `local-mlops label --from-capture` driven in a real browser,
`local-mlops data import capture` in the runtime image, then a one-epoch run on that dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from local_mlops.cli.app import app
from local_mlops.config import Settings
from local_mlops.s3 import ensure_bucket, s3_client
from local_mlops.serving.captured import capture_location, read_captured

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from capture_helpers import answer, image_bytes, json_request, write_captures  # noqa: E402

pytestmark = [pytest.mark.docker, pytest.mark.ui]
ENDPOINT = "shapes"
CLASSES = ["red", "blue"]
PER_CLASS = 8  # the importer's seeded split needs 7 per class
runner = CliRunner()


@dataclass
class Loop:
    settings: Settings
    url: str
    truth: dict[str, str]  # labeling key -> the class the image really is
    env: dict[str, str]


@pytest.fixture(scope="module")
def loop(s3: tuple[Settings, str], tmp_path_factory: pytest.TempPathFactory) -> Loop:
    """An endpoint's traffic as the router captures it: red and blue images (the model gets
    some wrong), one JSON request with two images, one capture that is not an image."""
    base, url = s3
    state = tmp_path_factory.mktemp("capture-loop-state")
    settings = replace(
        base, s3_endpoint=url, bucket="capture-it", state_dir=str(state),
        model_package_group="capture-loop",
    )  # fmt: skip
    ensure_bucket(settings, url)
    client = s3_client(settings, url)
    requests, colours = [], []
    for i in range(PER_CLASS):
        for label, colour in ((0, (150 + 10 * i, 20, 30)), (1, (20, 30, 150 + 10 * i))):
            guess = label if i % 4 else 1 - label  # every fourth answer is wrong
            requests.append(("image/png", image_bytes(colour, 16), answer(CLASSES, [guess])))
            colours.append(CLASSES[label])
    pair = json_request(image_bytes((250, 0, 0), 16), image_bytes((0, 0, 250), 16))
    requests.append(("application/json", pair, answer(CLASSES, [0, 1])))
    colours += ["red", "blue"]
    requests.append(("image/png", b"\x89PNG\r\n\x1a\n cut short", answer(CLASSES, [0])))
    write_captures(
        client, tmp_path_factory.mktemp("spool"), requests, ENDPOINT,
        f"s3://{settings.bucket}/datacapture",
    )  # fmt: skip
    images = [i for i in read_captured(client, capture_location(settings, ENDPOINT))]
    decodable = [i for i in images if not i.problem]
    assert len(decodable) == len(colours)
    env = {
        "LOCAL_MLOPS_S3_ENDPOINT": url,
        "LOCAL_MLOPS_BUCKET": settings.bucket,
        "LOCAL_MLOPS_STATE_DIR": str(state),
        "LOCAL_MLOPS_MODEL_PACKAGE_GROUP": "capture-loop",
    }
    return Loop(settings, url, {i.key: c for i, c in zip(decodable, colours, strict=True)}, env)


def start_label_command(loop: Loop) -> tuple[subprocess.Popen[str], str, list[str]]:
    # Ctrl-C reaches the command as at a terminal, even when the tests run from a background
    # job, whose children start with SIGINT ignored (Python then keeps ignoring it).
    program = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv[0] = 'local-mlops'; runpy.run_module('local_mlops', run_name='__main__')"
    )
    argv = [sys.executable, "-c", program, "label", "--from-capture", ENDPOINT, "--json"]
    # PYTHONFAULTHANDLER: a command that does not stop prints every thread's stack on SIGABRT.
    env = {**os.environ, **loop.env, "COLUMNS": "300", "PYTHONFAULTHANDLER": "1"}
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    said: list[str] = []
    url = ""
    deadline = time.monotonic() + 60
    while not url and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        said.append(line)
        url = next((w for w in line.split() if w.startswith("http://127.0.0.1:")), "")
    assert url, "".join(said)
    return process, url, said


@dataclass
class Labeled:
    summary: dict[str, Any]
    said: str
    progress: tuple[str, str]  # before and after
    job: str
    accepted: int


@pytest.fixture(scope="module")
def labeled(loop: Loop, browser: Any) -> Labeled:
    """A person labels every captured image in the page: Enter where the model is right."""
    process, url, said = start_label_command(loop)
    context = browser.new_context(viewport={"width": 1100, "height": 820})
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(url)
        page.wait_for_selector("body[data-idle=true]")
        before, job = page.locator("#progress").inner_text(), page.locator("#job").inner_text()
        accepted = 0
        for _ in loop.truth:
            key = page.locator("#name").inner_text()
            suggestion = page.locator("#suggest").inner_text()
            assert suggestion.startswith("model says ") and "Enter accepts" in suggestion
            wanted = loop.truth[key]
            if suggestion.startswith(f"model says {wanted} "):
                page.keyboard.press("Enter")  # take the model's answer
                accepted += 1
            else:
                page.keyboard.press(str(CLASSES.index(wanted) + 1))
        page.wait_for_selector("body[data-idle=true]")
        after = page.locator("#progress").inner_text()
    finally:
        context.close()
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            stdout, stderr = process.communicate(timeout=30)
            pytest.fail(f"`label` did not stop within 30 s of Ctrl-C; its stacks:\n{stderr}")
    assert process.returncode == 0, stderr
    return Labeled(json.loads(stdout), "".join(said) + stderr, (before, after), job, accepted)


def test_labeling_captures_in_the_browser_writes_ground_truth(loop: Loop, labeled: Labeled) -> None:
    total = len(loop.truth)
    assert labeled.progress == (f"0 of {total} labeled", f"{total} of {total} labeled")
    assert "1 undecodable" in labeled.job
    assert 0 < labeled.accepted < total  # some suggestions were taken, some were wrong
    assert "1 captured image(s) cannot be decoded and are left out" in labeled.said
    summary = labeled.summary
    assert summary["labeled"] == total and len(summary["undecodable"]) == 1
    assert "not a decodable image" in summary["undecodable"][0]["reason"]
    assert summary["ground_truth"] == f"s3://{loop.settings.bucket}/groundtruth/{ENDPOINT}/"

    # The bucket holds the labels in SageMaker's ground truth format, keyed as captured.
    client = s3_client(loop.settings, loop.url)
    listed = client.list_objects_v2(Bucket=loop.settings.bucket, Prefix="groundtruth/")
    records = []
    for obj in listed["Contents"]:
        body = client.get_object(Bucket=loop.settings.bucket, Key=obj["Key"])["Body"].read()
        records += [json.loads(line) for line in body.decode().splitlines()]
    assert len(records) == total - 1  # the JSON request's two images share a line
    assert {r["groundTruthData"]["encoding"] for r in records} == {"CSV"}
    assert "red,blue" in {r["groundTruthData"]["data"] for r in records}
    images = read_captured(client, capture_location(loop.settings, ENDPOINT))
    assert {r["eventMetadata"]["eventId"] for r in records} == {
        i.join_key for i in images if not i.problem
    }


@pytest.fixture(scope="module")
def imported(loop: Loop, labeled: Labeled, runtime_image: str) -> Any:
    return runner.invoke(
        app,
        ["data", "import", "capture", "--endpoint", ENDPOINT],
        env={**loop.env, "COLUMNS": "300"},
    )


def test_import_capture_makes_a_dataset_like_any_import(loop: Loop, imported: Any) -> None:
    assert imported.exit_code == 0, imported.output
    uri = f"s3://{loop.settings.bucket}/datasets/capture-{ENDPOINT}/"
    assert imported.stdout.strip() == uri
    total = len(loop.truth)
    assert f"{total} of {total + 1} captured images are labeled" in imported.output
    client = s3_client(loop.settings, loop.url)
    prefix = f"datasets/capture-{ENDPOINT}/"

    def read(key: str) -> bytes:
        body = client.get_object(Bucket=loop.settings.bucket, Key=prefix + key)["Body"]
        return bytes(body.read())

    assert json.loads(read("classes.json")) == sorted(CLASSES)
    lines = [json.loads(line) for line in read("manifest.jsonl").decode().splitlines()]
    assert len(lines) == total
    names = [line["label-metadata"]["class-name"] for line in lines]
    assert {c: names.count(c) for c in CLASSES} == {"red": PER_CLASS + 1, "blue": PER_CLASS + 1}
    for line, name in zip(lines, names, strict=True):
        assert line["label"] == sorted(CLASSES).index(name)
        assert line["source-ref"].startswith(f"s3://{loop.settings.bucket}/{prefix}images/{name}/")
        assert line["label-metadata"]["human-annotated"] == "yes"
    assert read("shards/images-000.tar")  # what the pipeline's steps read


def test_a_one_epoch_run_trains_on_the_imported_captures(loop: Loop, imported: Any) -> None:
    assert imported.exit_code == 0, imported.output
    uri = imported.stdout.strip()
    argv = ["run", "--local", "--data", uri, "--epochs", "1", "--backbone"]
    argv += ["mobilenet_v3_small", "--threshold", "0", "--json"]
    env = {**loop.env, "LOCAL_MLOPS_AUTO_APPROVE": "false", "COLUMNS": "300"}
    result = runner.invoke(app, argv, env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["succeeded"], report["failure_reason"]
    assert report["model_package"]["ModelPackageVersion"] == 1
