"""Fixtures for the serving unit tests: an endpoint store, fake models, the router in a thread."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from serving_fakes import FakeInstances, FakeModel, FolderBucket, RouterThread  # noqa: E402

from local_mlops.serving.capture import CaptureWriter  # noqa: E402
from local_mlops.serving.router import Router  # noqa: E402
from local_mlops.serving.state import EndpointStore  # noqa: E402


@pytest.fixture
def store(tmp_path: Path) -> EndpointStore:
    return EndpointStore(tmp_path / "state")


@pytest.fixture
def bucket(tmp_path: Path) -> FolderBucket:
    return FolderBucket(tmp_path / "s3")


@pytest.fixture
def router(store: EndpointStore, bucket: FolderBucket, tmp_path: Path) -> Iterator[RouterThread]:
    writer = CaptureWriter(tmp_path / "spool", bucket, max_age_seconds=0.5)
    writer.start()
    thread = RouterThread(Router(store.list, writer))
    yield thread
    thread.close()
    writer.close()


@pytest.fixture
def instances() -> Iterator[FakeInstances]:
    fake = FakeInstances()
    yield fake
    fake.close()


@pytest.fixture
def model() -> Iterator[FakeModel]:
    fake = FakeModel(1)
    yield fake
    fake.close()
