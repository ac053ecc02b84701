"""Pretrained weights: fetched once into the bucket, a local file uploaded, offline named."""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local_mlops.config import load_settings
from local_mlops.errors import LocalMlopsError
from local_mlops.pipeline import weights

EMPTY = Path(__file__).resolve().parents[1] / "data" / "empty.toml"


@pytest.fixture
def s3_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto's backends live in this process and outlive a server: start from an empty state.
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    ).create_bucket(Bucket="local-mlops")
    yield url
    server.stop()


@pytest.fixture
def weights_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server standing in for download.pytorch.org; records each request."""
    (tmp_path / "resnet18.pth").write_bytes(b"fake state dict")
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Handler, directory=str(tmp_path))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()


def read(url: str, uri: str) -> bytes:
    bucket, key = uri[5:].split("/", 1)
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_imagenet_weights_are_downloaded_once_then_reused(
    s3_url: str, weights_server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, requests = weights_server
    monkeypatch.setitem(weights.IMAGENET_URLS, "resnet18", f"{base}/resnet18.pth")
    settings = load_settings(config_file=EMPTY, environ={})

    first = weights.resolve(settings, s3_url, "imagenet", "resnet18", say=lambda _: None)
    second = weights.resolve(settings, s3_url, "imagenet", "resnet18", say=lambda _: None)

    assert first == second == "s3://local-mlops/weights/resnet18-imagenet.pth"
    assert read(s3_url, first) == b"fake state dict"
    assert len(requests) == 1


def test_offline_imagenet_download_names_the_alternatives(
    s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(weights.IMAGENET_URLS, "resnet18", "http://127.0.0.1:1/resnet18.pth")
    settings = load_settings(config_file=EMPTY, environ={})
    with pytest.raises(LocalMlopsError) as raised:
        weights.resolve(settings, s3_url, "imagenet", "resnet18", say=lambda _: None)
    assert "offline?" in raised.value.message
    assert "--weights PATH_OR_S3_URI" in (raised.value.fix or "")


def test_a_local_state_dict_is_uploaded_and_none_means_no_channel(
    s3_url: str, tmp_path: Path
) -> None:
    settings = load_settings(config_file=EMPTY, environ={})
    state = tmp_path / "mine.pth"
    state.write_bytes(b"my weights")
    uri = weights.resolve(settings, s3_url, str(state), "resnet18", say=lambda _: None)
    assert read(s3_url, uri) == b"my weights"
    assert weights.resolve(settings, s3_url, "none", "resnet18") == ""
    assert weights.resolve(settings, s3_url, "s3://other/w.pth", "resnet18") == "s3://other/w.pth"
    with pytest.raises(LocalMlopsError, match="neither none, imagenet"):
        weights.resolve(settings, s3_url, str(tmp_path / "missing.pth"), "resnet18")
