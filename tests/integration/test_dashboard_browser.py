"""The dashboard in a real browser over a real local run: every page shows the real figures,
and Approve deploys (a real endpoint in the serving image, behind the real router), then deploys
a second version blue/green. Screenshots of each page land in test-artifacts/ui/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from local_mlops import s3 as s3_helpers
from local_mlops.config import Settings
from local_mlops.devenv import dockerhost
from local_mlops.monitoring import first_report, traffic
from local_mlops.monitoring.run import run_monitor
from local_mlops.pipeline import runner
from local_mlops.s3 import ensure_bucket
from local_mlops.serving import daemon, local
from local_mlops.serving.fleet import ENDPOINT_LABEL, free_port
from local_mlops.targets import open_target
from local_mlops.targets.endpoints import local_invocations_url
from local_mlops.ui.data import Dashboard
from local_mlops.ui.server import DashboardServer

pytestmark = [pytest.mark.docker, pytest.mark.ui]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
ENDPOINT = "ui-it-endpoint"
DRIFTED = 100  # brightened requests after the first report
DEPLOY_TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def runs(
    runtime_image: str, serving_image: str, s3: tuple[Settings, str]
) -> Iterator[tuple[Settings, runner.RunResult, str]]:
    """One run that registers a version, then one that fails the gate (served from the cache).
    Endpoints it deploys get their own router port and name, and are removed afterwards."""
    base, url = s3
    settings = replace(
        base,
        s3_endpoint=url,
        bucket="ui-it",
        backbone="mobilenet_v3_small",
        epochs=2,
        endpoint_name=ENDPOINT,
        router_port=free_port(),
        deployment_bake_seconds=1.0,
        endpoint_ping_timeout=240.0,
    )
    ensure_bucket(settings, url)
    params = {"Epochs": 2, "Backbone": "mobilenet_v3_small", "AccuracyThreshold": 0.0}
    good = runner.run(settings, runner.RunOptions(parameters=params), say=print)
    assert good.succeeded, good.failure_reason
    failed = runner.run(
        settings,
        runner.RunOptions(parameters=params | {"AccuracyThreshold": 1.0}),
        say=print,
    )
    assert failed.status == "Failed"
    yield settings, good, failed.execution_arn.rsplit("/", 1)[-1]
    for container in dockerhost.docker_client().containers.list(
        all=True, filters={"label": f"{ENDPOINT_LABEL}={ENDPOINT}"}
    ):
        container.remove(force=True)
    daemon.stop_router(settings)


@pytest.fixture(scope="module")
def dashboard(runs: tuple[Settings, runner.RunResult, str]) -> Iterator[str]:
    settings, _, _ = runs
    with DashboardServer(Dashboard(settings, open_target(settings, settings.s3_endpoint))) as ui:
        yield ui.url


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_runs_page_and_run_page_show_the_real_run(
    page: Any, dashboard: str, runs: tuple[Settings, runner.RunResult, str]
) -> None:
    _, good, failed_id = runs
    good_id = good.execution_arn.rsplit("/", 1)[-1]
    accuracy = f"{good.metrics['accuracy'] * 100:.2f}%"
    page.goto(f"{dashboard}/runs")
    table = page.locator("#runs")
    assert table.locator(f"text={good_id}").count() == 1
    assert accuracy in table.inner_text()
    assert "Failed" in table.inner_text() and failed_id in table.inner_text()
    shot(page, "runs")

    page.click(f"text={good_id}")
    page.wait_for_url(f"**/runs/{good_id}")
    assert page.locator("#run-accuracy").inner_text() == accuracy
    graph = page.locator("svg.dag")
    for step in ("ValidateData", "Preprocess", "Train", "Evaluate", "CheckAccuracy"):
        assert graph.locator(f"text={step}").count() >= 1
    # the per-epoch curves come from the training job's history.json
    assert page.locator("svg[aria-label='accuracy per epoch'] polyline").count() == 2
    shot(page, "run")

    page.goto(f"{dashboard}/runs/{failed_id}")
    assert "below the threshold 1.0" in page.locator(".alert").inner_text()
    shot(page, "run-failed")

    page.goto(f"{dashboard}/runs")
    page.check(f"input[value='{good_id}']")
    page.check(f"input[value='{failed_id}']")
    page.click("text=Compare the two ticked runs")
    differs = page.locator("#compare-parameters tr.differs")
    assert "AccuracyThreshold" in differs.inner_text()
    shot(page, "compare")


def approve_in_the_browser(page: Any, dashboard: str, version: int, name: str) -> None:
    """Click Approve on a version's page and wait for its deployment to finish."""
    page.goto(f"{dashboard}/models/{version}")
    page.click("button[data-action=approve]")
    page.wait_for_function(
        "document.getElementById('approval-status').textContent.trim() === 'Approved'"
    )
    page.wait_for_function(
        "['Succeeded', 'Failed'].includes(document.getElementById('deployment').dataset.state)",
        timeout=DEPLOY_TIMEOUT_MS,
    )
    state = page.locator("#deployment .deploy-state").inner_text()
    assert state.startswith("Deployed:"), page.locator("#deployment").inner_text()
    assert f"serves version {version}" in state
    assert page.locator("#deployment .deploy-log li").count() >= 3  # progress lines
    shot(page, name)


def split_pngs(settings: Settings, n: int, drift: str | None = None, seed: int = 0) -> list[bytes]:
    """``n`` requests drawn from the test split of the run the endpoint serves (``traffic``'s)."""
    client = s3_helpers.s3_client(settings, settings.s3_endpoint)
    key, _ = traffic.endpoint_split(settings, client, ENDPOINT)
    images, labels = traffic.load_split(client, settings.bucket, key)
    strength = 0.2 if drift else None
    return traffic.draw(images, labels, n, drift, strength, seed)[0]


def test_registry_approve_button_deploys_the_version(
    page: Any, dashboard: str, runs: tuple[Settings, runner.RunResult, str]
) -> None:
    settings, good, _ = runs
    version = good.model_package["ModelPackageVersion"] if good.model_package else 0
    page.goto(f"{dashboard}/models")
    assert f"v{version}" in page.locator("#versions").inner_text()
    page.click(f"#versions >> text=v{version}")
    assert page.locator("svg.heatmap rect").count() == 100  # 10 digit classes
    shot(page, "model")
    approve_in_the_browser(page, dashboard, version, "model-approved")
    registry = open_target(settings, settings.s3_endpoint).models
    described = registry.describe(f"{settings.model_package_group}/{version}")
    assert described["ModelApprovalStatus"] == "Approved"
    assert re.search(r"Approved", page.locator("#approval-status").inner_text())
    page.click("#deployment .deploy-state a")
    page.wait_for_url(f"**/endpoints/{ENDPOINT}")
    assert page.locator("#endpoint-version").inner_text() == f"v{version}"
    assert page.locator("#endpoint-status").inner_text() == "InService"


def test_endpoint_pages_show_traffic_and_a_blue_green_update(
    page: Any, dashboard: str, runs: tuple[Settings, runner.RunResult, str]
) -> None:
    settings, good, _ = runs
    version = int(good.model_package["ModelPackageVersion"]) if good.model_package else 0
    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=local.runtime_url(settings),
        region_name=settings.region,
        **s3_helpers.FAKE_CREDENTIALS,
    )
    for body in split_pngs(settings, 12, seed=11):  # other draws than the first report's
        reply = runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=body, ContentType="image/png")
        assert "predictions" in json.loads(reply["Body"].read())
    page.goto(f"{dashboard}/endpoints")
    row = page.locator("#endpoints").inner_text()
    assert ENDPOINT in row and "InService" in row and f"v{version}" in row
    shot(page, "endpoints")
    page.goto(f"{dashboard}/endpoints/{ENDPOINT}")
    assert int(page.locator("#endpoint-requests").inner_text()) >= 12
    for chart in ("request rate by version", "latency percentiles", "error rate"):
        assert page.locator(f"svg[aria-label^='{chart}'] polyline").count() >= 1
    shot(page, "endpoint")

    # A second version of the same artifact and baselines, pending: approving it updates the
    # endpoint (and the monitoring below compares with its baselines).
    registry = open_target(settings, settings.s3_endpoint).models
    package = registry.describe(f"{settings.model_package_group}/{version}")
    container = package["InferenceSpecification"]["Containers"][0]
    second = registry.register(  # type: ignore[attr-defined]
        settings.model_package_group,
        model_data_url=container["ModelDataUrl"],
        image=container["Image"],
        metrics=package.get("Metrics"),
        drift_check_baselines=package.get("DriftCheckBaselines"),
    )
    newer = int(second["ModelPackageVersion"])
    approve_in_the_browser(page, dashboard, newer, "model-approved-update")
    page.goto(f"{dashboard}/endpoints/{ENDPOINT}")
    assert page.locator("#endpoint-version").inner_text() == f"v{newer}"
    assert f"Version {version} → {newer}" in page.locator("#update").inner_text()
    reply = runtime.invoke_endpoint(
        EndpointName=ENDPOINT, Body=split_pngs(settings, 1, seed=12)[0], ContentType="image/png"
    )
    assert reply["InvokedProductionVariant"] == "AllTraffic"
    shot(page, "endpoint-updated")


def test_monitoring_and_labeling_pages_show_a_real_monitoring_run_and_the_captures(
    page: Any, dashboard: str, runs: tuple[Settings, runner.RunResult, str]
) -> None:
    settings, _, _ = runs
    target = open_target(settings, settings.s3_endpoint)
    # The main job's first report (clean requests from the run's test split, one monitoring
    # job), then brightened requests and the monitoring job again over the hour.
    clean = first_report.first_report(settings, target, ENDPOINT, print)
    assert clean["traffic"]["ok"] == first_report.REQUESTS
    # Its own burst, not the hour: of the 13 requests the tests above sent, only one captured
    # in the burst's first second can fall in (capture times are whole seconds).
    assert first_report.REQUESTS <= clean["report"]["records"] < first_report.REQUESTS + 13
    bodies = split_pngs(settings, DRIFTED, "brightness", seed=3)
    sent = traffic.send(local_invocations_url(settings, ENDPOINT), ENDPOINT, bodies)
    assert sent.ok == DRIFTED, sent.error_samples
    daemon.flush_router(settings)
    drifted = run_monitor(settings, target, ENDPOINT, timedelta(hours=1), say=print)
    # the hour: the earlier tests' requests, the clean burst and the brightened ones
    assert drifted["records"] > clean["report"]["records"] + DRIFTED
    assert "brightness" in drifted["violated_features"]

    page.goto(f"{dashboard}/monitoring")
    page.click(f"#monitored >> text={ENDPOINT}")
    page.wait_for_url(f"**/monitoring/{ENDPOINT}")
    assert page.locator("#latest-violations").inner_text() == str(len(drifted["violations"]))
    assert "brightness" in page.locator(".alert").inner_text()
    # one line per drawn feature, through both reports
    assert page.locator("svg[aria-label^='drift distance'] polyline").count() >= 2
    latest = page.locator("details.report").first.inner_text()
    assert drifted["report_uri"].removesuffix("/") in latest
    assert "exceeds threshold: 0.1" in latest
    reports = page.locator("details.report")
    assert reports.count() == 2  # newest first
    assert clean["report"]["report_uri"].removesuffix("/") in reports.last.inner_text()
    shot(page, "monitoring")

    page.goto(f"{dashboard}/labeling")
    row = page.locator("#captures").inner_text()
    assert ENDPOINT in row and f"local-mlops label --from-capture {ENDPOINT}" in row
    captured = int(page.locator("#captures tbody tr td.num").first.inner_text().split()[0])
    # every request of these tests was captured (sampling 100%)
    assert captured >= 13 + first_report.REQUESTS + DRIFTED
    shot(page, "labeling")


def test_pages_are_keyboard_reachable_and_fit_a_laptop_screen(
    page: Any, dashboard: str, browser: Any
) -> None:
    page.goto(f"{dashboard}/runs")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    names = []
    for _ in range(8):
        page.keyboard.press("Tab")
        names.append(page.evaluate("document.activeElement.textContent.trim()"))
    for section in ("Runs", "Registry", "Endpoints", "Monitoring", "Labeling"):
        assert section in names
    laptop = browser.new_page(viewport={"width": 1280, "height": 720})
    try:
        for path in ("/runs", "/models", "/endpoints", f"/endpoints/{ENDPOINT}", "/labeling"):
            laptop.goto(f"{dashboard}{path}")
            overflow = laptop.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{path} scrolls sideways by {overflow} px"
    finally:
        laptop.close()
