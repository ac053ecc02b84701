"""moto's server behind a write-through middleware, and the restore that precedes it.

Which requests change state (S3 REST, path-style; the server forces path-style addressing):

    PUT/POST/DELETE /<bucket>/<key>[?...]   PutObject, CopyObject, CompleteMultipartUpload,
                                            DeleteObject, tagging/ACL  -> that key is re-synced
    PUT/DELETE /<bucket>                    CreateBucket, DeleteBucket -> the bucket is re-synced
    POST /<bucket>?delete (and other bucket POSTs)  DeleteObjects     -> the bucket is reconciled

"Re-synced" means: after moto answered 2xx and before the answer leaves, the key's current state
is read from moto's backend and written to (or removed from) the store, under a per-key lock so
two writers of one key leave the later state on disk. Part uploads and multipart initiation
change no object and are not persisted (an upload cut by a kill is simply gone, as on S3).
Requests for other services (SageMaker, ECR: the cloud path's test double) are not persisted.

Reads are passed to moto unchanged, except a plain ranged GetObject (boto3's ``download_file``
of an object over 8 MB): ``ranges.py`` answers it with the range's bytes only, after moto has
answered the same request as a HEAD (moto alone copies the whole object for every range).

moto internals used (moto 5.2.5, pinned; ``tests/unit/emulator/test_durable_s3.py`` and
``test_durable_s3_ranges.py`` cover each):
``s3_backends.bucket_accounts``, ``s3_backends[account][partition].buckets``, ``FakeBucket.keys``,
``FakeKey.value/etag/metadata/last_modified``, ``S3Backend.create_bucket/put_object``; for ranged
GETs also ``FakeKey._value_buffer/lock/size/storage_class``,
``FakeBucket.policy/logging/versioning_status``, ``moto.settings.INITIAL_NO_AUTH_ACTION_COUNT``,
and the behaviour of ``S3Response._handle_range_header``, ``head_object`` and ``get_object``
(listed in ``ranges.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from durable_s3.ranges import RangedGets
from durable_s3.store import ObjectStore, StoredObject

logger = logging.getLogger("durable_s3")

STATUS_PATH = "/_local-mlops/durable"  # no bucket name has an underscore
MUTATING = ("PUT", "POST", "DELETE")
# Multipart steps that change no object: uploading a part, starting or aborting an upload.
NO_OBJECT_CHANGE = ("partNumber", "uploads")

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class Change:
    kind: str  # "key" | "bucket" | "bucket-keys"
    bucket: str
    key: str = ""


def _service_of(environ: dict[str, Any], query: dict[str, list[str]]) -> str | None:
    """The signing scope's service (``.../us-east-1/s3/aws4_request``), if the request is signed."""
    credential = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" in credential:
        credential = credential.split("Credential=", 1)[1].split(",", 1)[0]
    else:
        credential = (query.get("X-Amz-Credential") or [""])[0]
    parts = credential.split("/")
    return parts[3] if len(parts) >= 5 else None


def change_of(environ: dict[str, Any]) -> Change | None:
    """What an S3 request may change, or None for reads and other services."""
    method = environ.get("REQUEST_METHOD", "GET")
    if method not in MUTATING:
        return None
    path = environ.get("PATH_INFO", "/")
    if path.startswith("/moto-api") or path in ("", "/"):
        return None
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if _service_of(environ, query) not in (None, "s3"):
        return None
    bucket, _, key = path.lstrip("/").partition("/")
    bucket, key = unquote(bucket), unquote(key)
    if key:
        if any(name in query for name in NO_OBJECT_CHANGE):
            return None
        if method == "DELETE" and "uploadId" in query:
            return None  # AbortMultipartUpload
        return Change("key", bucket, key)
    if method == "POST":
        return Change("bucket-keys", bucket)
    if query:
        return None  # bucket configuration (versioning, policy, CORS, ...): not persisted
    return Change("bucket", bucket)


# --- moto's side ---


def _moto_bucket(name: str) -> Any:
    from moto.s3.models import s3_backends

    where = s3_backends.bucket_accounts.get(name)
    if where is None:
        return None
    partition, account = where
    return s3_backends[account][partition].buckets.get(name)


def _moto_key(bucket: Any, key: str) -> Any:
    from moto.s3.models import FakeKey

    found = bucket.keys.get(key)
    return found if isinstance(found, FakeKey) else None  # a delete marker counts as gone


def _stored(key: Any) -> StoredObject:
    return StoredObject(
        key=key.name,
        body=key.value,
        etag=key.etag.strip('"'),
        metadata={str(k): str(v) for k, v in dict(key.metadata).items()},
        last_modified=key.last_modified.isoformat(),
    )


class Persister:
    """Applies a change from moto's memory to the store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._known_buckets: set[str] = set()

    def apply(self, change: Change) -> None:
        if change.kind == "key":
            self._sync_key(change.bucket, change.key)
        elif change.kind == "bucket":
            self._sync_bucket(change.bucket)
        else:
            self.reconcile(change.bucket)

    def _sync_bucket(self, name: str) -> Any:
        bucket = _moto_bucket(name)
        with self.store.lock_for(name):
            if bucket is None:
                self.store.delete_bucket(name)
                self._known_buckets.discard(name)
            elif name not in self._known_buckets:
                self.store.put_bucket(name, bucket.account_id, bucket.region_name)
                self._known_buckets.add(name)
        return bucket

    def _sync_key(self, bucket_name: str, key_name: str) -> None:
        bucket = self._sync_bucket(bucket_name)
        if bucket is None:
            return
        with self.store.lock_for(bucket_name, key_name):
            key = _moto_key(bucket, key_name)
            if key is None:
                self.store.delete_object(bucket_name, key_name)
            else:
                self.store.put_object(bucket_name, _stored(key))

    def reconcile(self, bucket_name: str) -> None:
        """Make the stored bucket equal moto's: after DeleteObjects and other bucket-wide POSTs."""
        bucket = self._sync_bucket(bucket_name)
        if bucket is None:
            return
        live = {name for name in list(bucket.keys) if _moto_key(bucket, name) is not None}
        for name in self.store.keys(bucket_name) - live:
            self._sync_key(bucket_name, name)
        for name in live:
            self._sync_key(bucket_name, name)


def restore(store: ObjectStore) -> dict[str, Any]:
    """Load the store into moto (before the port opens); returns what was restored."""
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    started = time.monotonic()
    buckets = objects = size = 0
    for doc in store.buckets():
        backend = s3_backends[doc["account"]][get_partition(doc["region"])]
        if doc["name"] not in backend.buckets:
            backend.create_bucket(doc["name"], doc["region"])
        buckets += 1
        for obj in store.objects(doc["name"]):
            key = backend.put_object(
                doc["name"], obj.key, obj.body, etag=obj.etag or None, disable_notification=True
            )
            key.set_metadata(dict(obj.metadata))
            if obj.last_modified:
                key.last_modified = dt.datetime.fromisoformat(obj.last_modified)
            objects += 1
            size += len(obj.body)
    return {
        "buckets": buckets,
        "objects": objects,
        "bytes": size,
        "seconds": round(time.monotonic() - started, 3),
    }


class DurableS3:
    """WSGI middleware: persists each successful S3 change before its answer is sent."""

    def __init__(self, app: Any, persister: Persister, status: dict[str, Any]) -> None:
        self.app = app
        self.persister = persister
        self.status = status
        self.ranged_gets = RangedGets(app)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == STATUS_PATH:
            body = json.dumps(self.status).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if environ.get("REQUEST_METHOD") == "GET" and "HTTP_RANGE" in environ:
            ranged = self.ranged_gets(environ, start_response)
            if ranged is not None:
                return ranged
        change = change_of(environ)
        if change is None:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        captured: list[Any] = []
        written: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = [status, headers, exc_info]
            return written.append

        result = self.app(environ, capture)
        try:
            chunks = written + [bytes(chunk) for chunk in result]
        finally:
            getattr(result, "close", lambda: None)()
        status, headers, exc_info = captured
        if status.startswith("2"):
            try:
                self.persister.apply(change)
            except OSError as exc:
                logger.error("could not persist %s: %s", change, exc)
                return _error(start_response, f"the emulator could not persist the write: {exc}")
        start_response(status, headers, exc_info)
        return chunks


def _error(start_response: StartResponse, message: str) -> list[bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
        f"<Message>{message}</Message></Error>"
    ).encode()
    start_response("500 Internal Server Error", [("Content-Type", "application/xml")])
    return [body]


def make_app(data_dir: str, fsync: bool = True) -> DurableS3:
    """Restore the store into moto and return the WSGI app that keeps it up to date."""
    os.environ.setdefault("S3_IGNORE_SUBDOMAIN_BUCKETNAME", "true")  # path-style only
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    store = ObjectStore(Path(data_dir), fsync=fsync)
    restored = restore(store)
    status = {"data_dir": str(data_dir), "fsync": fsync, "restored": restored}
    app = DomainDispatcherApplication(create_backend_app)
    return DurableS3(app, Persister(store), status)
