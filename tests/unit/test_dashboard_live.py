"""The dashboard's Endpoints, Monitoring and Labeling pages over real parts: a moto server, the
real router in a thread with fake model servers behind it, the real blue/green controller, and
monitoring reports written in the monitoring job's format (docs/monitoring.md)."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "serving"))
from monitoring_reports import ENDPOINT, STAMPS, numeric, predictions, report  # noqa: E402
from serving_fakes import FakeInstances, RouterThread, runtime  # noqa: E402

from local_mlops.config import Settings, load_settings  # noqa: E402
from local_mlops.devenv.emulator import MotoServer  # noqa: E402
from local_mlops.s3 import ensure_bucket  # noqa: E402
from local_mlops.serving import local  # noqa: E402
from local_mlops.serving import state as st  # noqa: E402
from local_mlops.serving.deploy import LocalEndpoints, ModelSpec  # noqa: E402
from local_mlops.serving.policy import DeploymentPolicy  # noqa: E402
from local_mlops.serving.router import Router  # noqa: E402
from local_mlops.serving.routerd import ROUTER_FILE  # noqa: E402
from local_mlops.targets import open_target  # noqa: E402
from local_mlops.ui import charts  # noqa: E402
from local_mlops.ui.data import Dashboard  # noqa: E402
from local_mlops.ui.server import DashboardServer  # noqa: E402

BUCKET = "ui-live"
NO_CAPTURE = st.DataCapture(False, 100, "")


@dataclass
class World:
    settings: Settings
    target: Any
    url: str
    router: RouterThread
    instances: FakeInstances


def spec(version: int) -> ModelSpec:
    return ModelSpec(version, f"arn:aws:sagemaker:r:0:model-package/g/{version}", "/m", "img")


def seed(world: World) -> None:
    s3 = world.target.session.s3_client
    baseline = {
        "version": 0.0,
        "features": [numeric("confidence", 0.97), predictions({"0": 66, "1": 67, "2": 67})],
    }
    s3.put_object(Bucket=BUCKET, Key="baselines/1/statistics.json", Body=json.dumps(baseline))
    registry = world.target.models
    for version in (1, 2, 3):
        package = registry.register(  # type: ignore[attr-defined]
            world.settings.model_package_group,
            model_data_url=f"s3://{BUCKET}/models/{version}/model.tar.gz",
            image="img",
            approval_status="Approved" if version == 1 else "PendingManualApproval",
            metrics={"accuracy": 0.97},
        )
        # What RegisterModel records once the pipeline writes baselines (the monitoring branch).
        package["DriftCheckBaselines"] = {
            "ModelDataQuality": {
                "Statistics": {"S3Uri": f"s3://{BUCKET}/baselines/1/statistics.json"}
            }
        }
        registry._write(registry._version_key(package["ModelPackageGroupName"], version), package)
    for i, stamp in enumerate(STAMPS):
        for name, doc in zip(
            ("statistics.json", "constraint_violations.json", "summary.json"),
            report(i),
            strict=True,
        ):
            s3.put_object(
                Bucket=BUCKET, Key=f"monitoring/{ENDPOINT}/{stamp}/{name}", Body=json.dumps(doc)
            )
    line = json.dumps({"captureData": {}, "eventMetadata": {"eventId": "e"}, "eventVersion": "0"})
    for n, count in ((1, 3), (2, 2)):
        key = f"datacapture/{ENDPOINT}/AllTraffic/2026/12/01/20/00-0{n}-000-x{n}.jsonl"
        s3.put_object(Bucket=BUCKET, Key=key, Body="\n".join([line] * count) + "\n")
    truth = json.dumps({"groundTruthData": {"data": "7", "encoding": "CSV"}})
    s3.put_object(Bucket=BUCKET, Key=f"groundtruth/{ENDPOINT}/2026/12/01/20/a.jsonl", Body=truth)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    state = tmp_path_factory.mktemp("ui-live-state")
    store = st.EndpointStore(state)
    router = RouterThread(Router(store.list))
    instances = FakeInstances()
    with MotoServer("127.0.0.1") as url:
        settings = replace(
            load_settings({"bucket": BUCKET, "state_dir": str(state)}),
            s3_endpoint=url,
            router_port=router.port,
            endpoint_name=ENDPOINT,
        )
        ensure_bucket(settings, url)
        serving = state / "serving"
        serving.mkdir(parents=True, exist_ok=True)
        (serving / ROUTER_FILE).write_text(json.dumps({"pid": os.getpid(), "port": router.port}))
        world = World(settings, open_target(settings, url), url, router, instances)
        seed(world)
        LocalEndpoints(store, instances, router).deploy(
            ENDPOINT, spec(1), DeploymentPolicy(), NO_CAPTURE
        )
        client = runtime(router.url)
        for _ in range(5):
            client.invoke_endpoint(EndpointName=ENDPOINT, Body=b"png", ContentType="image/png")
        yield world
        router.close()
        instances.close()


def controller_deploy(world: World) -> Any:
    """What ``targets.endpoints.deploy`` does locally, with fake containers."""

    def deploy(settings: Settings, say: Any, *, version: int, endpoint: str) -> dict[str, Any]:
        store = st.EndpointStore(settings.state_path)
        policy = DeploymentPolicy("linear", 50, bake_seconds=0.2, ping_timeout=2)
        done = LocalEndpoints(store, world.instances, world.router, say).deploy(
            endpoint, spec(version), policy, NO_CAPTURE
        )
        return local.endpoint_view(done, settings)

    return deploy


@pytest.fixture(scope="module")
def ui(world: World) -> Iterator[str]:
    dashboard = Dashboard(world.settings, world.target, deploy=controller_deploy(world))
    with DashboardServer(dashboard) as server:
        yield server.url


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def approve(ui: str, version: int) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{ui}/api/models/{version}/approve",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(ui: str, job: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, body = get(f"{ui}/api/deployments/{job}")
        state = json.loads(body)
        if state["state"] != "Running":
            return state
        time.sleep(0.1)
    raise AssertionError(f"deployment {job} still running: {state}")


def test_endpoints_page_lists_the_endpoint_with_its_version(ui: str) -> None:
    status, html = get(f"{ui}/endpoints")
    assert status == 200
    assert f'<a href="/endpoints/{ENDPOINT}">{ENDPOINT}</a>' in html
    assert "InService" in html and '<a href="/models/1">v1</a>' in html
    assert "AllTraffic (100%, 1)" in html


def test_endpoint_page_charts_the_routers_figures(ui: str) -> None:
    status, html = get(f"{ui}/endpoints/{ENDPOINT}")
    assert status == 200
    assert '<dd id="endpoint-requests">5</dd>' in html
    for label in ("requests per second", "latency (ms)", "errors (% of requests)", "time (UTC)"):
        assert f"{label}</text>" in html
    assert 'class="legend">v1 (AllTraffic)' in html and 'class="legend">p95' in html
    assert "Version 1: " in html and "Succeeded" in html  # the last deployment


def test_approve_deploys_blue_green_and_the_page_follows_it(ui: str, world: World) -> None:
    code, body = approve(ui, 2)
    assert code == 202 and body["ModelApprovalStatus"] == "Approved"
    job = wait_for(ui, body["deployment"]["id"])
    assert job["state"] == "Succeeded", job
    lines = [line["text"] for line in job["lines"]]
    assert any("Blue/green: starting 1 instance(s) of version 2" in t for t in lines)
    assert any("50% of traffic on version 2" in t for t in lines)
    assert lines[-1] == f"Endpoint {ENDPOINT} serves version 2."
    group = world.settings.model_package_group
    assert world.target.models.describe(f"{group}/2")["ModelApprovalStatus"] == "Approved"
    _, html = get(f"{ui}/endpoints/{ENDPOINT}")
    assert '<dd id="endpoint-version"><a href="/models/2">v2</a></dd>' in html
    assert "Version 1 → 2" in html
    _, model = get(f"{ui}/models/2")
    assert 'data-state="Succeeded"' in model and "serves version 2" in model


def test_a_failed_deployment_shows_why_and_the_endpoint_keeps_its_version(
    ui: str, world: World
) -> None:
    world.instances.unhealthy.add(3)
    code, body = approve(ui, 3)
    assert code == 202
    job = wait_for(ui, body["deployment"]["id"])
    assert job["state"] == "Failed"
    assert "rolled back" in job["error"] and "still serves version 2" in job["fix"]
    _, html = get(f"{ui}/endpoints/{ENDPOINT}")
    assert '<a href="/models/2">v2</a>' in html and "RolledBack" in html
    assert get(f"{ui}/api/deployments/d999")[0] == 404


def test_monitoring_pages_show_drift_predictions_confidence_accuracy_and_violations(
    ui: str,
) -> None:
    status, index = get(f"{ui}/monitoring")
    assert status == 200 and f'href="/monitoring/{ENDPOINT}"' in index
    assert "CompletedWithViolations" in index
    status, html = get(f"{ui}/monitoring/{ENDPOINT}")
    assert status == 200
    assert '<dd id="latest-violations">2</dd>' in html
    # drift distance per report, against the threshold
    assert "distance (max CDF gap)</text>" in html and "threshold 0.1</text>" in html
    assert 'class="legend">brightness' in html and 'class="legend">confidence' not in html
    # prediction shares against the baseline's
    assert 'class="legend">baseline' in html and 'class="legend">latest window' in html
    assert "predicted class</text>" in html
    # confidence per report with the baseline mean; accuracy where ground truth exists
    assert "baseline 0.970</text>" in html and "mean top-1 probability</text>" in html
    assert "accuracy where ground truth exists" in html and "threshold 0.9</text>" in html
    # the violations of each report, newest first
    assert html.count('<details class="report"') == 3
    assert "Baseline drift distance: 0.31 exceeds threshold: 0.1" in html
    assert "Baseline drift distance: 0.12 exceeds threshold: 0.1" in html
    reports = html[html.index('id="viol-h"') :]
    assert reports.index("2026-12-01 22:00:00 UTC") < reports.index("2026-12-01 20:00:00 UTC")


def test_a_report_read_while_the_job_writes_it_is_complete_on_the_next_load(
    ui: str, world: World
) -> None:
    """Report files are fetched once (they never change), but a file not written yet is not
    remembered as missing: the page shows the report whole once the job has finished."""
    s3 = world.target.session.s3_client
    statistics, violations, summary = report(2, "writing")
    folder = f"monitoring/writing/{STAMPS[0]}"
    s3.put_object(Bucket=BUCKET, Key=f"{folder}/statistics.json", Body=json.dumps(statistics))
    status, html = get(f"{ui}/monitoring/writing")
    assert status == 200 and '<dd id="latest-violations">0</dd>' in html
    s3.put_object(Bucket=BUCKET, Key=f"{folder}/summary.json", Body=json.dumps(summary))
    body = json.dumps(violations)
    s3.put_object(Bucket=BUCKET, Key=f"{folder}/constraint_violations.json", Body=body)
    status, html = get(f"{ui}/monitoring/writing")
    count = len(violations["violations"])
    assert status == 200 and f'<dd id="latest-violations">{count}</dd>' in html
    assert "Baseline drift distance: 0.31 exceeds threshold: 0.1" in html
    later = f"monitoring/writing/{STAMPS[1]}"
    for name, doc in zip(
        ("statistics", "constraint_violations", "summary"), report(0, "writing"), strict=True
    ):
        s3.put_object(Bucket=BUCKET, Key=f"{later}/{name}.json", Body=json.dumps(doc))
    status, html = get(f"{ui}/monitoring/writing")
    assert html.count('<details class="report"') == 2  # a new report shows at once


def test_monitoring_of_an_endpoint_without_reports_says_how_to_make_one(ui: str) -> None:
    status, html = get(f"{ui}/monitoring/nosuch")
    assert status == 404 and "local-mlops monitor run --endpoint nosuch" in html


def test_labeling_page_counts_captures_waiting_for_labels(ui: str) -> None:
    status, html = get(f"{ui}/labeling")
    assert status == 200
    row = html[html.index('id="captures"') :]
    assert ">5 <span" in row and '<td class="num">1</td>' in row
    assert "<strong>4</strong>" in row
    assert f"local-mlops label --from-capture {ENDPOINT}" in row


def test_time_axes_tick_on_round_clock_times() -> None:
    ticks = charts.time_ticks(1_764_619_200.0, 1_764_619_200.0 + 3600)  # 20:00 to 21:00 UTC
    assert [label for _, label in ticks] == ["20:00", "20:15", "20:30", "20:45", "21:00"]
    svg = charts.line_chart(
        [charts.Series(f"feature_{i}", [(0, 0.1)]) for i in range(12)],
        title="t",
        x_label="x",
        y_label="y",
    )
    assert svg.count('class="legend"') == 12 and 'viewBox="0 0 560 ' in svg


def test_the_value_axis_covers_every_point() -> None:
    svg = charts.line_chart(
        [charts.Series("p99", [(0, 12.0), (1, 121.0)])],
        title="t",
        x_label="x",
        y_label="latency (ms)",
        y_range=(0.0, 121.0),
    )
    assert 'text-anchor="end">150</text>' in svg  # the top tick is above 121
