"""Pretrained weights for transfer learning, fetched once and kept in the bucket.

``weights`` is ``none`` (train from scratch), ``imagenet`` (torchvision's ImageNet weights for
the backbone: downloaded by the host the first time, then reused from
``s3://BUCKET/weights/``) or a state-dict file given as a local path or an ``s3://`` URI. The
training job receives it as its ``pretrained`` channel.
"""

from __future__ import annotations

import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError
from local_mlops.s3 import object_exists, s3_client

# torchvision's published ImageNet weights (the DEFAULT weights of each backbone).
IMAGENET_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "mobilenet_v3_small": "https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth",
}
DOWNLOAD_TIMEOUT = 20
PREFIX = "weights"


def _download(url: str, target: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            target.write_bytes(response.read())
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise LocalMlopsError(
            f"ImageNet weights could not be downloaded from {url} ({exc}; offline?)",
            "pass --weights PATH_OR_S3_URI to a state-dict file, or --weights none",
        ) from exc


def resolve(
    settings: Settings, endpoint: str, weights: str, backbone: str, say: Any = print
) -> str:
    """The S3 URI of the pretrained channel, or "" for ``none``."""
    if weights in ("", "none"):
        return ""
    if weights.startswith("s3://"):
        return weights
    client = s3_client(settings, endpoint)
    if weights == "imagenet":
        if backbone not in IMAGENET_URLS:
            raise LocalMlopsError(
                f"no ImageNet weights known for {backbone!r}",
                f"use one of {', '.join(IMAGENET_URLS)} or --weights none",
            )
        key = f"{PREFIX}/{backbone}-imagenet.pth"
        if not object_exists(client, settings.bucket, key):
            say(
                f"Downloading ImageNet weights for {backbone} (once; kept in s3://{settings.bucket}/{key}) ..."
            )
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "weights.pth"
                _download(IMAGENET_URLS[backbone], path)
                client.upload_file(str(path), settings.bucket, key)
        return f"s3://{settings.bucket}/{key}"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise LocalMlopsError(
            f"weights {weights!r} is neither none, imagenet, an s3:// URI nor an existing file",
            "pass --weights none|imagenet|PATH|s3://...",
        )
    key = f"{PREFIX}/{path.name}"
    client.upload_file(str(path), settings.bucket, key)
    return f"s3://{settings.bucket}/{key}"
