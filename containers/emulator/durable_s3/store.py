"""The on-disk side: one file per object, written atomically, read back at start.

Layout under the data directory::

    <bucket>/bucket.json                  {"name", "account", "region"}
    <bucket>/objects/<h[:2]>/<h>          one object: a JSON header line, then its bytes
                                          (h = sha256 of the key, so any key is a file name)

An object file is written to a temp file, flushed, fsynced and renamed into place: a reader (or
a restart after a kill at any moment) sees the old version or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".tmp-"


@dataclass
class StoredObject:
    key: str
    body: bytes
    etag: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    last_modified: str = ""


class ObjectStore:
    """Buckets and objects as files; safe to call from many request threads."""

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks = [threading.Lock() for _ in range(64)]

    def lock_for(self, bucket: str, key: str = "") -> threading.Lock:
        """One of a few locks, by key: two writers of one key take turns."""
        digest = hashlib.sha256(f"{bucket}/{key}".encode()).digest()
        return self._locks[digest[0] % len(self._locks)]

    def _bucket_dir(self, bucket: str) -> Path:
        if not bucket or "/" in bucket or bucket.startswith("."):
            raise ValueError(f"not a bucket name: {bucket!r}")
        return self.root / bucket

    def _object_path(self, bucket: str, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self._bucket_dir(bucket) / "objects" / digest[:2] / digest

    def _write_atomically(self, path: Path, chunks: list[bytes]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    # buckets
    def put_bucket(self, name: str, account: str, region: str) -> None:
        doc = {"name": name, "account": account, "region": region}
        self._write_atomically(self._bucket_dir(name) / "bucket.json", [json.dumps(doc).encode()])

    def delete_bucket(self, name: str) -> None:
        shutil.rmtree(self._bucket_dir(name), ignore_errors=True)

    def buckets(self) -> list[dict[str, str]]:
        found = []
        for path in sorted(self.root.glob("*/bucket.json")):
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return found

    # objects
    def put_object(self, bucket: str, obj: StoredObject) -> None:
        header = {
            "key": obj.key,
            "etag": obj.etag,
            "metadata": obj.metadata,
            "last_modified": obj.last_modified,
            "size": len(obj.body),
        }
        line = json.dumps(header, separators=(",", ":")).encode() + b"\n"
        self._write_atomically(self._object_path(bucket, obj.key), [line, obj.body])

    def delete_object(self, bucket: str, key: str) -> None:
        self._object_path(bucket, key).unlink(missing_ok=True)

    def keys(self, bucket: str) -> set[str]:
        return {obj.key for obj in self.objects(bucket, with_body=False)}

    def objects(self, bucket: str, with_body: bool = True) -> Iterator[StoredObject]:
        """Every complete object of a bucket; leftover temp files of a killed writer are removed."""
        for path in (self._bucket_dir(bucket) / "objects").glob("*/*"):
            if path.name.startswith(TEMP_PREFIX):
                path.unlink(missing_ok=True)
                continue
            obj = _read_object(path, with_body)
            if obj is not None:
                yield obj


def _read_object(path: Path, with_body: bool) -> StoredObject | None:
    try:
        with path.open("rb") as handle:
            header: dict[str, Any] = json.loads(handle.readline())
            body = handle.read() if with_body else b""
    except (OSError, ValueError):
        return None
    if with_body and len(body) != header.get("size"):
        return None
    return StoredObject(
        key=header["key"],
        body=body,
        etag=header.get("etag", ""),
        metadata=dict(header.get("metadata") or {}),
        last_modified=header.get("last_modified", ""),
    )
