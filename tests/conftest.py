"""Shared test setup: an isolated state dir and config for every test, and the Docker gate."""

from __future__ import annotations

import os
from pathlib import Path

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
