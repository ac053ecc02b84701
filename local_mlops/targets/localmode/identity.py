"""What a step's request names, pinned to content: image IDs and digests of the S3 inputs.

A request names its image by tag and its inputs by URI; both can change behind the same name
(``local-mlops build`` retags a rebuilt image, a re-import overwrites ``datasets/NAME/``). The
cache key therefore includes each image's ID from the Docker engine and, for each S3 input, a
digest over the keys, ETags and sizes of the objects under its prefix: one ListObjectsV2 walk,
no downloads. ``file://`` inputs get a digest over relative paths, sizes and modification times.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from local_mlops.devenv import dockerhost

ABSENT = "absent"  # an image the engine does not have, or a prefix with no objects


def request_images(arguments: dict) -> list[str]:
    """The image URIs a Training, Processing or Tuning request runs."""
    found = [
        (arguments.get("AppSpecification") or {}).get("ImageUri"),
        (arguments.get("AlgorithmSpecification") or {}).get("TrainingImage"),
    ]
    for definition in _training_definitions(arguments):
        found.append((definition.get("AlgorithmSpecification") or {}).get("TrainingImage"))
    return sorted({uri for uri in found if isinstance(uri, str) and uri})


def request_inputs(arguments: dict) -> list[str]:
    """The data URIs a request reads (processing inputs and training channels), not its outputs."""
    found = []
    for item in arguments.get("ProcessingInputs") or []:
        found.append((item.get("S3Input") or {}).get("S3Uri"))
    for config in [arguments, *_training_definitions(arguments)]:
        for channel in config.get("InputDataConfig") or []:
            source = channel.get("DataSource") or {}
            found.append((source.get("S3DataSource") or {}).get("S3Uri"))
            found.append((source.get("FileDataSource") or {}).get("FileUri"))
    return sorted({uri for uri in found if isinstance(uri, str) and uri})


def _training_definitions(arguments: dict) -> list[dict]:
    single = arguments.get("TrainingJobDefinition")
    many = arguments.get("TrainingJobDefinitions") or []
    return [d for d in [single, *many] if isinstance(d, dict)]


class ContentIdentity:
    """Image IDs and input digests, each computed once per execution (a run sees one state)."""

    def __init__(self, s3_client: Any) -> None:
        self.s3 = s3_client
        self._images: dict[str, str] = {}
        self._inputs: dict[str, str] = {}

    def of(self, arguments: dict) -> dict[str, dict[str, str]]:
        """``{"images": {uri: id}, "inputs": {uri: digest}}`` for one resolved request."""
        return {
            "images": {uri: self.image_id(uri) for uri in request_images(arguments)},
            "inputs": {uri: self.input_digest(uri) for uri in request_inputs(arguments)},
        }

    def image_id(self, uri: str) -> str:
        if uri not in self._images:
            self._images[uri] = dockerhost.image_id(uri) or ABSENT
        return self._images[uri]

    def input_digest(self, uri: str) -> str:
        """Not memoized across steps: an upstream step may write a prefix a later one reads."""
        if uri.startswith("s3://"):
            return prefix_digest(self.s3, uri)
        if uri.startswith("file://"):
            return folder_digest(Path(uri[len("file://") :]))
        return uri


def prefix_digest(s3_client: Any, uri: str) -> str:
    """sha256 over (key, ETag, size) of every object under the URI, as S3Prefix inputs read it."""
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    digest = hashlib.sha256()
    count = 0
    try:
        paginator = s3_client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                digest.update(
                    f"{obj['Key']}\0{obj.get('ETag', '')}\0{obj.get('Size', 0)}\n".encode()
                )
                count += 1
    except (BotoCoreError, ClientError) as exc:
        return f"unreadable: {type(exc).__name__}"
    return f"sha256:{digest.hexdigest()}" if count else ABSENT


def folder_digest(path: Path) -> str:
    """sha256 over relative path, size and mtime of each file under a local input."""
    if not path.exists():
        return ABSENT
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        relative = file.relative_to(path) if file != path else Path(file.name)
        digest.update(f"{relative.as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def describe_change(before: dict, after: dict) -> list[str]:
    """What differs between two content identities, in words (images first, then inputs)."""
    changes = []
    for uri, new in sorted((after.get("images") or {}).items()):
        old = (before.get("images") or {}).get(uri)
        if old != new:
            changes.append(f"image {uri} changed ({_short(old)} -> {_short(new)})")
    for uri, new in sorted((after.get("inputs") or {}).items()):
        old = (before.get("inputs") or {}).get(uri)
        if old != new:
            changes.append(f"input {uri} changed" if old else f"input {uri} is new")
    return changes


def _short(image: str | None) -> str:
    if not image:
        return "none"
    return image[: len("sha256:") + 12] if image.startswith("sha256:") else image
