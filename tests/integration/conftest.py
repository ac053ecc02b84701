"""Integration fixtures: the runtime and serving images (built once per session), an S3 emulator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from local_mlops.config import Settings, load_settings
from local_mlops.devenv import emulator, image


@pytest.fixture(scope="session")
def session_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for integration tests; the wheelhouse and logs live in the real state dir."""
    state = Path.home() / ".local-mlops"
    settings = load_settings(
        {"state_dir": str(state), "bucket": "it-bucket"},
        config_file=Path(__file__).parents[1] / "data" / "empty.toml",
    )
    return settings


@pytest.fixture(scope="session")
def runtime_image(session_settings: Settings) -> str:
    """Build (or reuse from the layer cache) the runtime image."""
    result = image.build(session_settings, image.runtime_spec(session_settings), print)
    return result.tag


@pytest.fixture(scope="session")
def serving_image(session_settings: Settings) -> str:
    """Build (or reuse from the layer cache) the lean serving image."""
    result = image.build(session_settings, image.serving_spec(session_settings), print)
    return result.tag


@pytest.fixture(scope="session")
def s3(
    session_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, str]]:
    """An embedded moto server on the Docker bridge address, with the bucket created."""
    settings = replace(session_settings, state_dir=str(tmp_path_factory.mktemp("s3-state")))
    server = emulator.EmbeddedEmulator(settings)
    url = server.start()
    try:
        yield settings, url
    finally:
        server.stop()
