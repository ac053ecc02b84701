"""Where the images to label come from, and where the manifest goes.

A source lists image keys, reads one image's bytes, names each image's ``source-ref`` and
keeps its journal and outputs in a local ``workdir``. ``FolderSource`` labels a local folder
in place; ``S3Source`` labels ``s3://bucket/prefix/`` (images are read on demand, the journal
stays on this machine, and the manifest and ``classes.json`` are uploaded next to the images).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from local_mlops.errors import LocalMlopsError

# Same set as the importer in the runtime image (the two code roots do not share code).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
MANIFEST_FILE = "manifest.jsonl"
CLASSES_FILE = "classes.json"


class ImageSource(Protocol):
    """What the labeling session needs from a place that holds images."""

    description: str
    workdir: Path

    def list_keys(self) -> list[str]: ...

    def source_ref(self, key: str) -> str: ...

    def read(self, key: str) -> bytes: ...

    def publish(self, manifest: Path, classes: Path) -> str:
        """Put the outputs where users look for them; return where that is."""
        ...

    def suggestion(self, key: str) -> tuple[str, float] | None:
        """A class name the page offers for ``key`` (a model's answer), with its probability."""
        ...

    def labels_changed(self, labels: Mapping[str, tuple[str, str]]) -> None:
        """Called after every change with each labelled key's (class name, labelling time)."""
        ...


class PlainSource:
    """Images without suggestions, whose labels go only to the manifest."""

    def suggestion(self, key: str) -> tuple[str, float] | None:
        return None

    def labels_changed(self, labels: Mapping[str, tuple[str, str]]) -> None:
        return None


def _join(base: str, relative: str) -> str:
    return f"{base.rstrip('/')}/{relative}"


class FolderSource(PlainSource):
    """Images anywhere under a local folder (hidden files and folders excluded)."""

    def __init__(self, folder: Path, base_uri: str = "") -> None:
        if not folder.is_dir():
            raise LocalMlopsError(
                f"{folder} is not a folder", "pass a folder of images (or s3://bucket/prefix/)"
            )
        self.folder = folder.resolve()
        self.workdir = self.folder
        self.base_uri = base_uri
        self.description = str(folder)

    def list_keys(self) -> list[str]:
        keys = []
        for path in self.folder.rglob("*"):
            relative = path.relative_to(self.folder)
            if any(part.startswith(".") for part in relative.parts):
                continue
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                keys.append(relative.as_posix())
        return sorted(keys)

    def source_ref(self, key: str) -> str:
        return _join(self.base_uri, key) if self.base_uri else key

    def read(self, key: str) -> bytes:
        return (self.folder / key).read_bytes()

    def publish(self, manifest: Path, classes: Path) -> str:
        return str(manifest)  # already in place


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix/`` -> (bucket, "prefix/")."""
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise LocalMlopsError(f"{uri!r} names no bucket", "use s3://BUCKET/PREFIX/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


class S3Source(PlainSource):
    """Images under an S3 prefix, read through ``client`` (the emulator's or AWS's)."""

    def __init__(self, client: Any, uri: str, state_dir: Path, base_uri: str = "") -> None:
        self.client = client
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}"
        self.base_uri = base_uri
        digest = hashlib.sha256(self.uri.encode()).hexdigest()[:12]
        self.workdir = state_dir / "labeling" / f"{self.bucket}-{digest}"
        self.description = self.uri

    def list_keys(self) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        keys: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    relative = obj["Key"][len(self.prefix) :]
                    name = relative.rsplit("/", 1)[-1]
                    suffix = Path(name).suffix.lower()
                    if suffix in IMAGE_SUFFIXES and not name.startswith("."):
                        keys.append(relative)
        except (BotoCoreError, ClientError) as exc:
            raise LocalMlopsError(
                f"cannot list {self.uri}: {exc}", "check the bucket name and `local-mlops status`"
            ) from exc
        return sorted(keys)

    def source_ref(self, key: str) -> str:
        return _join(self.base_uri or self.uri, key)

    def read(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
            return bytes(body.read())
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"cannot read s3://{self.bucket}/{self.prefix}{key}: {exc}") from exc

    def publish(self, manifest: Path, classes: Path) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for path in (manifest, classes):
                self.client.upload_file(str(path), self.bucket, self.prefix + path.name)
        except (BotoCoreError, ClientError) as exc:
            raise LocalMlopsError(
                f"cannot upload the manifest to {self.uri}: {exc}",
                f"the labels are safe in {self.workdir}; run the same command again to retry",
            ) from exc
        return self.uri + manifest.name
