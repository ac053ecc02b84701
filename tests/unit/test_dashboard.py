"""The dashboard over real stores on a moto server: pages, approvals, refusals, charts."""

from __future__ import annotations

import io
import json
import re
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from local_mlops.config import Settings, load_settings
from local_mlops.devenv.emulator import MotoServer
from local_mlops.errors import LocalMlopsError
from local_mlops.s3 import ensure_bucket
from local_mlops.targets import open_target
from local_mlops.ui import charts, views
from local_mlops.ui.data import Dashboard
from local_mlops.ui.server import DashboardServer

GROUP = "local-mlops-image-classifier"


def _record(execution: str, status: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    steps = [
        {
            "StepName": "ValidateData",
            "StepType": "Processing",
            "StepStatus": "Succeeded",
            "StartTime": start,
            "EndTime": start,
            "Attempts": 1,
            "LogTail": [],
            "Metadata": None,
            "CacheHitResult": None,
        },
        {
            "StepName": "Train",
            "StepType": "Training",
            "StepStatus": status,
            "StartTime": start,
            "EndTime": end,
            "Attempts": 1,
            "FailureReason": "train exited 1: epochs must be >= 1" if status == "Failed" else None,
            "LogTail": ["epoch=1/2 train_loss=0.5", "error: epochs must be >= 1"],
            "Metadata": {
                "TrainingJob": {
                    "Arn": f"arn:aws:sagemaker:us-east-1:0:training-job/job-{execution}"
                }
            },
            "CacheHitResult": None,
        },
    ]
    return {
        "ExecutionId": execution,
        "PipelineExecutionArn": f"arn:x:pipeline/p/execution/{execution}",
        "PipelineName": "local-mlops-pipeline",
        "Status": status,
        "StartTime": start,
        "EndTime": end,
        "Parameters": {"Epochs": 2, "Backbone": "resnet18", **extra},
        "Steps": steps,
        "FailureReason": "Step Train failed" if status == "Failed" else None,
    }


@pytest.fixture(scope="module")
def state() -> Iterator[tuple[Settings, Any]]:
    with MotoServer("127.0.0.1") as url:
        settings = replace(load_settings({"bucket": "ui-test"}), s3_endpoint=url)
        ensure_bucket(settings, url)
        target = open_target(settings, url)
        s3 = target.session.s3_client
        good = _record(
            "aaa111", "Succeeded", "2026-12-01T10:00:00+00:00", "2026-12-01T10:01:30+00:00"
        )
        bad = _record(
            "bbb222",
            "Failed",
            "2026-12-01T11:00:00+00:00",
            "2026-12-01T11:00:20+00:00",
            LearningRate=0.01,
        )
        target.runs.save(good)  # type: ignore[attr-defined]
        target.runs.save(bad)  # type: ignore[attr-defined]
        report = {
            "multiclass_classification_metrics": {
                "accuracy": {"value": 0.975},
                "macro_f1": {"value": 0.97},
                "confusion_matrix": {"0": {"0": 39, "1": 1}, "1": {"0": 1, "1": 39}},
            },
            "per_class": {
                "0": {"precision": 0.975, "recall": 0.975, "f1": 0.975, "support": 40},
                "1": {"precision": 0.975, "recall": 0.975, "f1": 0.975, "support": 40},
            },
            "test_items": 80,
        }
        s3.put_object(Bucket="ui-test", Key="eval/aaa111/evaluation.json", Body=json.dumps(report))
        history = [
            {
                "epoch": 1,
                "train_loss": 0.9,
                "train_accuracy": 0.7,
                "val_loss": 0.6,
                "val_accuracy": 0.8,
                "images_per_sec": 300.0,
            },
            {
                "epoch": 2,
                "train_loss": 0.3,
                "train_accuracy": 0.92,
                "val_loss": 0.2,
                "val_accuracy": 0.96,
                "images_per_sec": 310.0,
            },
        ]
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            data = json.dumps(history).encode()
            info = tarfile.TarInfo("history.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        s3.put_object(
            Bucket="ui-test",
            Key="pipelines/local-mlops-pipeline/models/job-aaa111/output/output.tar.gz",
            Body=archive.getvalue(),
        )
        target.models.register(  # type: ignore[attr-defined]
            GROUP,
            model_data_url="s3://ui-test/models/aaa111/model.tar.gz",
            image="img:1",
            model_metrics={
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": "s3://ui-test/eval/aaa111/evaluation.json",
                    }
                }
            },
            metrics={"accuracy": 0.975, "macro_f1": 0.97},
            pipeline_execution_arn=good["PipelineExecutionArn"],
        )
        yield settings, target


@pytest.fixture(scope="module")
def ui(state: tuple[Settings, Any]) -> Iterator[str]:
    settings, target = state

    def deploy(settings: Settings, say: Any, *, version: int, endpoint: str) -> dict[str, Any]:
        raise LocalMlopsError("no Docker in this test", "the Docker tests deploy for real")

    with DashboardServer(Dashboard(settings, target, deploy=deploy)) as server:
        yield server.url


def get(url: str, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_runs_page_lists_both_runs_with_status_and_accuracy(ui: str) -> None:
    status, html = get(f"{ui}/runs")
    assert status == 200
    assert "aaa111" in html and "bbb222" in html
    assert "97.50%" in html  # the registered version's test accuracy
    assert html.index("bbb222") < html.index("aaa111")  # newest first
    assert re.search(r'<a href="/models/1">v1</a>', html)


def test_run_page_draws_the_graph_the_curves_and_the_failure(ui: str) -> None:
    status, html = get(f"{ui}/runs/aaa111")
    assert status == 200
    assert 'class="dag"' in html and "CheckAccuracy" in html  # steps that did not run are drawn too
    assert "accuracy per epoch" in html and "val_accuracy" in html and "epoch</text>" in html
    _, failed = get(f"{ui}/runs/bbb222")
    assert "Why it failed" in failed and "epochs must be &gt;= 1" in failed


def test_compare_shows_the_differing_parameter(ui: str) -> None:
    status, html = get(f"{ui}/compare?run=aaa111&run=bbb222")
    assert status == 200
    row = re.search(r'<tr class="differs"><th scope="row">LearningRate</th>', html)
    assert row, html[:500]


def test_model_page_shows_metrics_confusion_matrix_and_lineage(ui: str) -> None:
    status, html = get(f"{ui}/models/1")
    assert status == 200
    assert "confusion matrix (test split)" in html and "predicted class" in html
    assert "0.9750" in html and "(80 images)" in html
    assert 'href="/runs/aaa111"' in html


def test_approve_and_reject_act_on_the_registry(ui: str, state: tuple[Settings, Any]) -> None:
    _, target = state
    code, body = post(f"{ui}/api/models/1/approve", b"{}")
    assert code == 202 and body["ModelApprovalStatus"] == "Approved"
    assert body["deployment"]["version"] == 1  # approving deploys, as `models approve` does
    assert target.models.describe(f"{GROUP}/1")["ModelApprovalStatus"] == "Approved"
    code, body = post(f"{ui}/api/models/1/reject", b"{}")
    assert code == 400 and "reason" in body["error"]
    code, body = post(f"{ui}/api/models/1/reject", json.dumps({"reason": "drifts"}).encode())
    assert code == 200 and body["ModelApprovalStatus"] == "Rejected"
    assert target.models.describe(f"{GROUP}/1")["ApprovalDescription"] == "drifts"


def test_bad_requests_get_clear_answers(ui: str) -> None:
    assert (
        post(f"{ui}/api/models/1/approve", b"status=Approved", "application/x-www-form-urlencoded")[
            0
        ]
        == 415
    )
    assert post(f"{ui}/api/models/1/approve", b"{not json")[0] == 400
    code, body = post(f"{ui}/api/models/99/approve", b"{}")
    assert code == 404 and "does not exist" in body["error"]
    status, html = get(f"{ui}/runs/nosuch")
    assert status == 404 and "runs list" in html
    assert get(f"{ui}/nowhere")[0] == 404
    status, _ = get(f"{ui}/runs", Host="evil.example:8765")
    assert status == 421


def test_json_api_matches_the_pages(ui: str) -> None:
    _, runs = get(f"{ui}/api/runs")
    assert {r["id"]: r["status"] for r in json.loads(runs)} == {
        "aaa111": "Succeeded",
        "bbb222": "Failed",
    }


def test_a_fragment_is_the_page_body_only(ui: str) -> None:
    _, html = get(f"{ui}/runs?fragment=1")
    assert html.lstrip().startswith("<main") and "<html" not in html


def test_edges_come_from_the_real_definition() -> None:
    settings = load_settings({})
    edges = set(views._definition_edges(settings, False))
    assert {
        ("ValidateData", "Preprocess"),
        ("Preprocess", "Train"),
        ("Train", "Evaluate"),
        ("Evaluate", "CheckAccuracy"),
        ("CheckAccuracy", "RegisterModel-RegisterModel"),
        ("CheckAccuracy", "AccuracyTooLow"),
    } <= edges
    assert ("Train", "CheckAccuracy") not in edges  # implied through Evaluate
    tuned = set(views._definition_edges(settings, True))
    assert ("Tune", "Evaluate") in tuned and ("Train", "Evaluate") not in tuned


def test_charts_have_axes_units_and_a_legend() -> None:
    svg = charts.line_chart(
        [charts.Series("val_accuracy", [(1, 0.5), (2, 0.9)])],
        title="accuracy",
        x_label="epoch",
        y_label="accuracy (fraction)",
    )
    assert "epoch</text>" in svg and "accuracy (fraction)</text>" in svg
    assert 'class="legend">val_accuracy' in svg and "<polyline" in svg
    assert "no data yet" in charts.line_chart([], title="t", x_label="x", y_label="y")


def test_the_last_x_tick_label_fits_inside_the_chart() -> None:
    """A clock-time axis ends in a label centred on the plot's right edge: none is cut off."""
    start = 1_764_669_600.0  # 2025-12-02 10:00 UTC
    svg = charts.line_chart(
        [charts.Series("p50", [(start, 1.0), (start + 3600, 2.0)])],
        title="latency",
        x_label="time (UTC)",
        y_label="ms",
        x_time=True,
    )
    width = float(re.search(r'viewBox="0 0 (\d+)', svg).group(1))  # type: ignore[union-attr]
    ticks = re.findall(
        r'<text x="([\d.]+)" y="[\d.]+" class="tick" text-anchor="middle">([^<]+)<', svg
    )
    x, label = max((float(x), label) for x, label in ticks)
    assert x + charts.TICK_CHAR_PX * len(label) / 2 <= width, (x, label, width)
