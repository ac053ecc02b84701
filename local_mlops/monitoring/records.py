"""SageMaker data capture and ground truth records (DESIGN.md "Monitoring formats").

The router writes capture records as it serves; these builders make the same lines for
the traffic generator's tests, the drift benchmark, and ground truth from labels.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any


def iso_time(when: datetime) -> str:
    """``2026-12-01T20:01:48Z``: the capture's inferenceTime format."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def capture_record(
    payload: bytes,
    answer: dict[str, Any] | None,
    when: datetime,
    content_type: str = "image/png",
    event_id: str | None = None,
    inference_id: str | None = None,
) -> dict[str, Any]:
    """One capture line: the request body (base64) and the endpoint's JSON answer."""
    metadata: dict[str, Any] = {"eventId": event_id or str(uuid.uuid4())}
    if inference_id:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = iso_time(when)
    return {
        "captureData": {
            "endpointInput": {
                "observedContentType": content_type,
                "mode": "INPUT",
                "data": base64.b64encode(payload).decode(),
                "encoding": "BASE64",
            },
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": json.dumps(answer if answer is not None else {"error": "failed"}),
                "encoding": "JSON",
            },
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    }


def ground_truth_record(event_id: str, label: str) -> dict[str, Any]:
    """One ground truth line for the capture whose inferenceId (else eventId) is ``event_id``."""
    return {
        "groundTruthData": {"data": label, "encoding": "CSV"},
        "eventMetadata": {"eventId": event_id},
        "eventVersion": "0",
    }


def capture_key(when: datetime) -> str:
    """The capture file's path under ``datacapture/ENDPOINT/VARIANT/``."""
    when = when.astimezone(UTC)
    millis = when.microsecond // 1000
    return f"{when:%Y/%m/%d/%H}/{when:%M-%S}-{millis:03d}-{uuid.uuid4().hex}.jsonl"
