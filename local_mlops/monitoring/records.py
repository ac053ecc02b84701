"""Capture and ground truth records for tests, the drift benchmark and the traffic generator.

Capture lines are made by the router's own writer (``serving/capture.py``) and ground truth
lines by the labeling side's (``serving/groundtruth.py``), so what the monitoring job is tested
on is byte for byte what endpoints and labels write: ground truth under
``s3://BUCKET/groundtruth/ENDPOINT/yyyy/mm/dd/hh/*.jsonl``, keyed by the capture's
``inferenceId`` (its ``eventId`` when the request carried none).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from local_mlops.serving import capture, groundtruth
from local_mlops.serving.groundtruth import GROUND_TRUTH_PREFIX

JSON_TYPES = ("application/json",)


def capture_record(
    payload: bytes,
    answer: dict[str, Any] | None,
    when: datetime,
    content_type: str = "image/png",
    inference_id: str = "",
) -> dict[str, Any]:
    """One capture line of a request and the endpoint's JSON answer (None: an error answer)."""
    body = json.dumps(answer if answer is not None else {"error": "failed"}).encode()
    return capture.capture_record(
        capture.Capture(
            endpoint="endpoint",
            variant="AllTraffic",
            destination="",
            json_types=JSON_TYPES,
            request_type=content_type,
            request_body=payload,
            response_type="application/json",
            response_body=body,
            inference_id=inference_id,
            time=when.astimezone(UTC),
        )
    )


def ground_truth_record(inference_id: str, label: str) -> dict[str, Any]:
    """One ground truth line, as ``label --from-capture`` writes it (``serving/groundtruth.py``):
    the true class name of the request whose join key is ``inference_id`` (``"7,3"``: the images
    of a JSON request, in order)."""
    return groundtruth.ground_truth_record(inference_id, label.split(","))


def capture_key(endpoint: str, when: datetime, variant: str = "AllTraffic") -> str:
    """``datacapture/ENDPOINT/VARIANT/yyyy/mm/dd/hh/mm-ss-mmm-UUID.jsonl``."""
    return capture.capture_key(capture.CAPTURE_PREFIX, endpoint, variant, when.astimezone(UTC))


def ground_truth_key(endpoint: str, when: datetime) -> str:
    """``groundtruth/ENDPOINT/yyyy/mm/dd/hh/UUID.jsonl`` (SageMaker's ground truth layout)."""
    when = when.astimezone(UTC)
    return f"{GROUND_TRUTH_PREFIX}/{endpoint}/{when:%Y/%m/%d/%H}/{uuid.uuid4().hex}.jsonl"
