"""The dashboard in a real browser over a real local run: every page shows the run's figures,
and Approve acts. Screenshots of each page land in test-artifacts/ui/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from local_mlops.config import Settings
from local_mlops.pipeline import runner
from local_mlops.s3 import ensure_bucket
from local_mlops.targets import open_target
from local_mlops.ui.data import Dashboard
from local_mlops.ui.server import DashboardServer

pytestmark = [pytest.mark.docker, pytest.mark.ui]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"


@pytest.fixture(scope="module")
def runs(runtime_image: str, s3: tuple[Settings, str]) -> tuple[Settings, runner.RunResult, str]:
    """One run that registers a version, then one that fails the gate (served from the cache)."""
    base, url = s3
    settings = replace(
        base, s3_endpoint=url, bucket="ui-it", backbone="mobilenet_v3_small", epochs=2
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
    return settings, good, failed.execution_arn.rsplit("/", 1)[-1]


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


def test_registry_approve_button_approves_the_version(
    page: Any, dashboard: str, runs: tuple[Settings, runner.RunResult, str]
) -> None:
    settings, good, _ = runs
    version = good.model_package["ModelPackageVersion"] if good.model_package else 0
    page.goto(f"{dashboard}/models")
    assert f"v{version}" in page.locator("#versions").inner_text()
    page.click(f"#versions >> text=v{version}")
    assert page.locator("svg.heatmap rect").count() == 100  # 10 digit classes
    shot(page, "model")
    page.click("button[data-action=approve]")
    page.wait_for_function(
        "document.getElementById('approval-status').textContent.trim() === 'Approved'"
    )
    registry = open_target(settings, settings.s3_endpoint).models
    described = registry.describe(f"{settings.model_package_group}/{version}")
    assert described["ModelApprovalStatus"] == "Approved"
    assert re.search(r"Approved", page.locator("#approval-status").inner_text())
    shot(page, "model-approved")
