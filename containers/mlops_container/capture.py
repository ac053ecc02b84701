"""Reading SageMaker data capture and ground truth records (one JSON object a line).

Capture: ``{"captureData": {"endpointInput": {"observedContentType", "mode", "data",
"encoding"}, "endpointOutput": {...}}, "eventMetadata": {"eventId", "inferenceId",
"inferenceTime"}, "eventVersion": "0"}``. Ground truth: ``{"groundTruthData": {"data": "7",
"encoding": "CSV"}, "eventMetadata": {"eventId": ...}, "eventVersion": "0"}``, keyed by the
capture's ``inferenceId`` (or its ``eventId`` when the request had none), as SageMaker joins.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .images import decode_bytes, to_rgb_array

IMAGE_TYPES = ("image/png", "image/jpeg", "application/x-image")
JSON_TYPE = "application/json"
UNREADABLE = "unreadable"
WRONG_TYPE = "wrong_content_type"
# Decoded batches waiting for the model at most: decoding runs ahead of the forward, not all
# of the window at once.
PREFETCH = 2
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass
class Item:
    """One image of a captured request (a JSON request may carry several).

    ``read_window`` keeps the encoded image; :func:`image_batches` decodes it and marks the
    item UNREADABLE when it does not decode.
    """

    key: str  # the ground-truth join key (inferenceId, else eventId)
    position: int
    payload: bytes | None
    problem: str | None  # UNREADABLE / WRONG_TYPE when there is no image
    answer: str | None  # the label the endpoint answered, None for an error answer

    @property
    def readable(self) -> bool:
        """An image (once decoded by :func:`image_batches`: one that decoded)."""
        return self.problem is None


@dataclass
class Window:
    """The captured items of one time window, and what could not be used."""

    items: list[Item] = field(default_factory=list)
    records: int = 0
    skipped_out_of_window: int = 0
    bad_lines: int = 0


def parse_time(value: str | None) -> datetime | None:
    """An ISO-8601 time (``...Z`` allowed) as an aware UTC datetime; None when absent/invalid."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def json_lines(folder: Path | None) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    """Every line of every ``*.jsonl`` under ``folder`` (None for a line that is not an object)."""
    if folder is None or not folder.is_dir():
        return
    for path in sorted(folder.rglob("*.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except ValueError:
                    yield path, None
                    continue
                yield path, value if isinstance(value, dict) else None


def _payload(part: dict[str, Any]) -> bytes:
    data = part.get("data", "")
    if part.get("encoding", "").upper() == "BASE64":
        return base64.b64decode(data, validate=True)
    return data.encode() if isinstance(data, str) else json.dumps(data).encode()


def _payloads(content_type: str, payload: bytes) -> list[bytes | str]:
    """The encoded images of a request, or UNREADABLE / WRONG_TYPE."""
    media = content_type.split(";")[0].strip().lower()
    if media in IMAGE_TYPES:
        return [payload]
    if media != JSON_TYPE:
        return [WRONG_TYPE]
    try:
        instances = json.loads(payload)["instances"]
        payloads: list[bytes | str] = [
            base64.b64decode(i["b64"] if isinstance(i, dict) else i, validate=True)
            for i in instances
        ]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return [UNREADABLE]
    return payloads or [b""]


def _answers(output: dict[str, Any] | None, count: int) -> list[str | None]:
    """The labels the endpoint answered, or Nones for an error answer."""
    try:
        document = json.loads(_payload(output or {}))
        labels = [str(p["label"]) for p in document["predictions"]]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return [None] * count
    return (labels + [None] * count)[:count] if labels else [None] * count


def read_window(folder: Path, start: datetime | None, end: datetime | None) -> Window:
    """Captured items with ``start <= inferenceTime < end`` (records without a time count)."""
    window = Window()
    for _path, record in json_lines(folder):
        capture = (record or {}).get("captureData")
        if not isinstance(capture, dict) or not isinstance(capture.get("endpointInput"), dict):
            window.bad_lines += 1
            continue
        meta = (record or {}).get("eventMetadata") or {}
        when = parse_time(meta.get("inferenceTime"))
        if when is not None and (
            (start is not None and when < start) or (end is not None and when >= end)
        ):
            window.skipped_out_of_window += 1
            continue
        window.records += 1
        key = str(meta.get("inferenceId") or meta.get("eventId") or f"record-{window.records}")
        source = capture["endpointInput"]
        try:
            payloads = _payloads(str(source.get("observedContentType", "")), _payload(source))
        except (binascii.Error, ValueError):
            payloads = [UNREADABLE]
        answers = _answers(capture.get("endpointOutput"), len(payloads))
        for position, (payload, answer) in enumerate(zip(payloads, answers, strict=True)):
            if isinstance(payload, str):
                window.items.append(Item(key, position, None, payload, answer))
            else:
                window.items.append(Item(key, position, payload, None, answer))
    return window


def _decode(items: Sequence[Item], size: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Model-size RGB arrays and received sizes of the items that decode; marks the others."""
    arrays, sizes = [], []
    for item in items:
        try:
            image = decode_bytes(item.payload or b"")
            arrays.append(to_rgb_array(image, size))
        except DECODE_ERRORS:
            item.problem = UNREADABLE
            continue
        sizes.append(image.size)
        item.payload = None  # decoded: the bytes are no longer needed
    stacked = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), dtype=np.uint8)
    return stacked, sizes


def image_batches(
    items: Sequence[Item], size: int, batch: int
) -> Iterator[tuple[np.ndarray, list[tuple[int, int]]]]:
    """Decoded batches of the readable items, in order, decoded in a thread ahead of the
    consumer (the model's forward releases the GIL, so decoding overlaps it)."""
    pending = [item for item in items if item.readable]
    chunks = [pending[start : start + batch] for start in range(0, len(pending), batch)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        queued: deque[Future[tuple[np.ndarray, list[tuple[int, int]]]]] = deque()
        for chunk in chunks:
            queued.append(pool.submit(_decode, chunk, size))
            if len(queued) > PREFETCH:
                yield queued.popleft().result()
        while queued:
            yield queued.popleft().result()


def read_ground_truth(folder: Path | None) -> dict[tuple[str, int], str]:
    """(join key, position in the request) -> true label; CSV data ``"7"`` or ``"7,3"``."""
    truth: dict[tuple[str, int], str] = {}
    for _path, record in json_lines(folder):
        data = (record or {}).get("groundTruthData") or {}
        key = ((record or {}).get("eventMetadata") or {}).get("eventId")
        if not key or not isinstance(data.get("data"), str):
            continue
        for position, label in enumerate(data["data"].split(",")):
            if label.strip():
                truth[(str(key), position)] = label.strip()
    return truth
