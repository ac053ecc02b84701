"""Shared test setup: an isolated state dir and config for every test, and the Docker gate."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_state(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point the state dir at a temp dir and ignore the developer's own config file."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("LOCAL_MLOPS_STATE_DIR", str(state))
    monkeypatch.setenv("LOCAL_MLOPS_CONFIG", str(REPO_ROOT / "tests" / "data" / "empty.toml"))
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    return state


def docker_required() -> bool:
    """CI sets LOCAL_MLOPS_REQUIRE_DOCKER=1: then a missing engine fails instead of skipping."""
    return os.environ.get("LOCAL_MLOPS_REQUIRE_DOCKER") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    docker_items = [item for item in items if item.get_closest_marker("docker")]
    if not docker_items:
        return
    from local_mlops.devenv import dockerhost

    if dockerhost.docker_available():
        return
    if docker_required():
        raise pytest.UsageError(
            "LOCAL_MLOPS_REQUIRE_DOCKER=1 but the Docker engine is not reachable: "
            "start dockerd (scripts/install-docker.sh)"
        )
    skip = pytest.mark.skip(
        reason="Docker engine not reachable (set LOCAL_MLOPS_REQUIRE_DOCKER=1 to fail)"
    )
    for item in docker_items:
        item.add_marker(skip)


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under LOCAL_MLOPS_REQUIRE_DOCKER=1 (CI), any skipped test fails the run."""
    if docker_required() and _skipped:
        print(f"\n{len(_skipped)} test(s) skipped, which CI does not allow: {_skipped[:5]}")
        session.exitstatus = 1


# Browser fixtures: Playwright driving Debian's Chromium (Playwright's own download fails here).
# Like the Docker gate: without a browser these tests skip, unless LOCAL_MLOPS_REQUIRE_DOCKER=1
# (CI), where they fail with the install hint.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = "run scripts/install-browser.sh and `pip install playwright` (the dev extra)"


def chromium_path() -> str | None:
    path = os.environ.get("LOCAL_MLOPS_CHROMIUM") or shutil.which("chromium")
    return path if path and os.access(path, os.X_OK) else None


def _unavailable(reason: str) -> None:
    message = f"{reason}: {INSTALL_HINT}"
    if os.environ.get("LOCAL_MLOPS_REQUIRE_DOCKER") == "1":
        pytest.fail(f"LOCAL_MLOPS_REQUIRE_DOCKER=1 but {message}", pytrace=False)
    pytest.skip(f"{message} (set LOCAL_MLOPS_REQUIRE_DOCKER=1 to fail)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not longer: Playwright's sync API keeps its event loop
    running in the main thread while it is open, and later tests that call asyncio.run fail."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed")
    executable = chromium_path()
    if executable is None:
        _unavailable("Chromium is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 820})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
