"""Browser tests: Playwright driving Debian's Chromium (Playwright's own download fails here).

Like the Docker gate in tests/conftest.py: without a browser these tests skip, unless
LOCAL_MLOPS_REQUIRE_DOCKER=1 (CI), where they fail with the install hint.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ui: drives a real browser (tests/ui)")


def chromium_path() -> str | None:
    path = os.environ.get("LOCAL_MLOPS_CHROMIUM") or shutil.which("chromium")
    return path if path and os.access(path, os.X_OK) else None


def _unavailable(reason: str) -> None:
    message = f"{reason}: {INSTALL_HINT}"
    if os.environ.get("LOCAL_MLOPS_REQUIRE_DOCKER") == "1":
        pytest.fail(f"LOCAL_MLOPS_REQUIRE_DOCKER=1 but {message}", pytrace=False)
    pytest.skip(f"{message} (set LOCAL_MLOPS_REQUIRE_DOCKER=1 to fail)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
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
