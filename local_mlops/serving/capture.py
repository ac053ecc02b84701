"""Data capture in SageMaker's format: the one module that writes (and reads) capture files.

Each record is one JSON line (DESIGN.md, "Monitoring formats")::

    {"captureData": {"endpointInput": {"observedContentType", "mode": "INPUT", "data",
     "encoding"}, "endpointOutput": {...}}, "eventMetadata": {"eventId", "inferenceId",
     "inferenceTime"}, "eventVersion": "0"}

under ``s3://BUCKET/datacapture/ENDPOINT/VARIANT/yyyy/mm/dd/hh/mm-ss-mmm-UUID.jsonl``.

``CaptureWriter.record`` only appends the raw bodies to a buffer (the request's critical path);
a background thread encodes them, writes each file to a spool folder first and then uploads it, on
size or on age. ``flush`` (SIGTERM, ``endpoints delete``) writes everything buffered; a file whose
upload failed stays in the spool and is uploaded by the next flush or the next start, so no record
is lost when S3 is away for a while.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CAPTURE_PREFIX = "datacapture"
CSV_CONTENT_TYPES = ("text/csv",)


@dataclass(slots=True)
class Capture:
    """One request/response pair as the router saw it (raw bytes, encoded later).

    Made once per captured request on the router's event loop: slots and no ``frozen`` make it
    a fifth of the cost (0.25 against 1.25 us); nothing changes one after it is made.
    """

    endpoint: str
    variant: str
    destination: str  # s3://BUCKET/PREFIX (the endpoint's DataCaptureConfig)
    json_types: tuple[str, ...]
    request_type: str
    request_body: bytes
    response_type: str
    response_body: bytes
    inference_id: str
    time: dt.datetime


def _media(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def encode_payload(
    content_type: str, body: bytes, mode: str, json_types: Sequence[str]
) -> dict[str, str]:
    """``endpointInput``/``endpointOutput``: JSON and CSV as text, anything else base64."""
    media = _media(content_type)
    if media in json_types or media in CSV_CONTENT_TYPES:
        try:
            text = body.decode("utf-8")
            encoding = "JSON" if media in json_types else "CSV"
            return {
                "observedContentType": content_type,
                "mode": mode,
                "data": text,
                "encoding": encoding,
            }
        except UnicodeDecodeError:
            pass
    return {
        "observedContentType": content_type,
        "mode": mode,
        "data": base64.b64encode(body).decode("ascii"),
        "encoding": "BASE64",
    }


def capture_record(capture: Capture) -> dict[str, Any]:
    """The SageMaker data-capture record of one invocation."""
    return {
        "captureData": {
            "endpointInput": encode_payload(
                capture.request_type, capture.request_body, "INPUT", capture.json_types
            ),
            "endpointOutput": encode_payload(
                capture.response_type, capture.response_body, "OUTPUT", capture.json_types
            ),
        },
        "eventMetadata": {
            "eventId": str(uuid.uuid4()),
            "inferenceId": capture.inference_id,
            "inferenceTime": capture.time.strftime(_TIME_FORMAT),
        },
        "eventVersion": "0",
    }


_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _json_text(body: bytes) -> str | None:
    try:
        return json.dumps(body.decode("utf-8"))
    except UnicodeDecodeError:
        return None


class LineEncoder:
    """Capture records as JSON lines, written out without building a dict per record.

    The same document as ``json.dumps(capture_record(c))`` (a test checks it), at about a quarter
    of the CPU: the writer runs in the router's process, on the cores the model uses. What
    repeats is encoded once and kept (each content type's ``{"observedContentType": ..., "mode":
    ..., "data": `` opening and how its data is encoded, each second's timestamp), and event ids
    are cut from one ``os.urandom`` draw per batch instead of a ``uuid4()`` each.
    """

    def __init__(self) -> None:
        self._openings: dict[tuple[str, str, tuple[str, ...]], tuple[str, str]] = {}
        self._second: tuple[int, str] = (-1, "")
        self._ids: list[str] = []

    def _opening(
        self, content_type: str, mode: str, json_types: tuple[str, ...]
    ) -> tuple[str, str]:
        """(the payload's opening up to its data, the encoding: JSON, CSV or BASE64)."""
        key = (content_type, mode, json_types)
        found = self._openings.get(key)
        if found is None:
            if len(self._openings) > 256:
                self._openings.clear()
            media = _media(content_type)
            encoding = (
                "JSON" if media in json_types else "CSV" if media in CSV_CONTENT_TYPES else "BASE64"
            )
            opening = f'{{"observedContentType": {json.dumps(content_type)}, "mode": "{mode}", '
            found = self._openings[key] = (opening + '"data": ', encoding)
        return found

    def _payload(
        self, content_type: str, body: bytes, mode: str, json_types: tuple[str, ...]
    ) -> str:
        opening, encoding = self._opening(content_type, mode, json_types)
        if encoding != "BASE64":
            data = _json_text(body)
            if data is not None:
                return f'{opening}{data}, "encoding": "{encoding}"}}'
        encoded = binascii.b2a_base64(body, newline=False).decode("ascii")
        return f'{opening}"{encoded}", "encoding": "BASE64"}}'

    def _time(self, when: dt.datetime) -> str:
        second = int(when.timestamp())
        if self._second[0] != second:
            self._second = (second, when.strftime(_TIME_FORMAT))
        return self._second[1]

    def _event_id(self) -> str:
        """A random (version 4) UUID, as ``str(uuid.uuid4())`` writes one."""
        if not self._ids:
            self._ids = [_uuid4_text(raw) for raw in _chunks(os.urandom(16 * 256), 16)]
        return self._ids.pop()

    def line(self, capture: Capture) -> str:
        json_types = tuple(capture.json_types)
        request = self._payload(capture.request_type, capture.request_body, "INPUT", json_types)
        response = self._payload(capture.response_type, capture.response_body, "OUTPUT", json_types)
        return (
            f'{{"captureData": {{"endpointInput": {request}, "endpointOutput": {response}}}, '
            f'"eventMetadata": {{"eventId": "{self._event_id()}", '
            f'"inferenceId": {json.dumps(capture.inference_id)}, '
            f'"inferenceTime": "{self._time(capture.time)}"}}, "eventVersion": "0"}}\n'
        )


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def _uuid4_text(raw: bytes) -> str:
    """16 random bytes as a version 4, RFC 4122 variant UUID's text."""
    value = bytearray(raw)
    value[6] = (value[6] & 0x0F) | 0x40
    value[8] = (value[8] & 0x3F) | 0x80
    text = value.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def capture_key(prefix: str, endpoint: str, variant: str, when: dt.datetime) -> str:
    """``PREFIX/ENDPOINT/VARIANT/yyyy/mm/dd/hh/mm-ss-mmm-UUID.jsonl``."""
    stamp = when.strftime("%Y/%m/%d/%H/%M-%S-") + f"{when.microsecond // 1000:03d}"
    return f"{prefix.strip('/')}/{endpoint}/{variant}/{stamp}-{uuid.uuid4()}.jsonl"


def split_destination(destination: str) -> tuple[str, str]:
    """``s3://BUCKET/PREFIX`` -> (BUCKET, PREFIX)."""
    rest = destination.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix or CAPTURE_PREFIX


# Upload one spooled file to (bucket, key); raises on failure (the file then stays spooled).
Uploader = Callable[[Path, str, str], None]


class CaptureWriter:
    """Buffered capture: ``record`` is O(1); a thread writes files on size or age.

    Each file costs an S3 PUT (and the emulator's write), on the same cores as the model: files
    are cut at ``max_bytes`` (4 MB, ~8,000 image records) or ``max_age_seconds``, whichever comes
    first, rather than every few hundred records.
    """

    def __init__(
        self,
        spool: Path,
        upload: Uploader,
        max_records: int = 10_000,
        max_bytes: int = 4 * 1024 * 1024,
        max_age_seconds: float = 5.0,
    ) -> None:
        self.spool = spool
        self.upload = upload
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_age = max_age_seconds
        self._buffer: list[Capture] = []
        self._bytes = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.upload_errors = 0
        self._encoder = LineEncoder()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()

    def record(self, capture: Capture) -> None:
        """Buffer one invocation; wakes the writer when the buffer is full."""
        with self._lock:
            self._buffer.append(capture)
            self._bytes += len(capture.request_body) + len(capture.response_body)
            full = len(self._buffer) >= self.max_records or self._bytes >= self.max_bytes
        if full:
            self._wake.set()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.max_age)
            self._wake.clear()
            if not self._stop.is_set():
                self.flush()

    def flush(self) -> int:
        """Write every buffered record to files and upload them (and any left in the spool)."""
        with self._flush_lock:
            with self._lock:
                batch, self._buffer, self._bytes = self._buffer, [], 0
            groups: dict[tuple[str, str, str, str], list[Capture]] = {}
            for c in batch:
                t = c.time
                hour = f"{t.year}{t.month:02d}{t.day:02d}{t.hour:02d}"
                groups.setdefault((c.destination, c.endpoint, c.variant, hour), []).append(c)
            for (destination, endpoint, variant, _), captures in groups.items():
                self._spool_file(destination, endpoint, variant, captures)
            self._upload_spool()
            self.written += len(batch)
            return len(batch)

    def _spool_file(
        self, destination: str, endpoint: str, variant: str, captures: list[Capture]
    ) -> None:
        bucket, prefix = split_destination(destination)
        key = capture_key(prefix, endpoint, variant, captures[0].time)
        path = self.spool / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(map(self._encoder.line, captures))
        scratch = path.with_name(path.name + ".part")
        scratch.write_text(lines)
        scratch.replace(path)  # only whole files are ever uploaded

    def _upload_spool(self) -> None:
        if not self.spool.is_dir():
            return
        for path in sorted(self.spool.rglob("*.jsonl")):
            bucket, _, key = path.relative_to(self.spool).as_posix().partition("/")
            try:
                self.upload(path, bucket, key)
            except Exception as exc:  # kept in the spool for the next flush, and said so
                self.upload_errors += 1
                print(f"capture upload of {key} failed, kept in {path}: {exc!r}", file=sys.stderr)
                continue
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop the thread and flush what is left."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=30)
        self.flush()


def s3_uploader(client: Any) -> Uploader:
    # One PUT per file: capture files are at most max_bytes, and upload_file's transfer
    # manager (a thread pool per call) costs the router's CPU, which the model shares.
    def upload(path: Path, bucket: str, key: str) -> None:
        client.put_object(
            Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType="application/jsonl"
        )

    return upload


def capture_keys(
    client: Any, bucket: str, endpoint: str, prefix: str = CAPTURE_PREFIX
) -> list[str]:
    """Every capture file of an endpoint, oldest first."""
    keys: list[str] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/{endpoint}/"):
        keys.extend(obj["Key"] for obj in page.get("Contents", []) if obj["Key"].endswith(".jsonl"))
    return sorted(keys, key=lambda k: k.split("/", 3)[-1])


def read_records(
    client: Any, bucket: str, endpoint: str, prefix: str = CAPTURE_PREFIX
) -> Iterator[dict[str, Any]]:
    """The capture records of an endpoint, file by file (for monitoring and tests)."""
    for key in capture_keys(client, bucket, endpoint, prefix):
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        for line in body.splitlines():
            if line.strip():
                yield json.loads(line)
