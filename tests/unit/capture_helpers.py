"""Captured requests written the way the router writes them (serving/capture.py's own writer)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from local_mlops.serving.capture import Capture, CaptureWriter, s3_uploader

NOW = dt.datetime.now(dt.UTC)


@contextmanager
def moto_bucket(bucket: str = "bkt") -> Iterator[Any]:
    """An S3 client on moto's in-process mock with ``bucket`` created."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
        yield client


def image_bytes(colour: tuple[int, int, int], size: int = 12, format: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, format=format)
    return out.getvalue()


def answer(classes: Sequence[str], best: Sequence[int], probability: float = 0.9) -> bytes:
    """The serving app's JSON answer: one prediction per image, ``best`` the winning indexes."""
    predictions = []
    for index in best:
        rest = (1 - probability) / max(len(classes) - 1, 1)
        probabilities = {
            name: probability if i == index else rest for i, name in enumerate(classes)
        }
        predictions.append(
            {
                "label": classes[index],
                "index": index,
                "probability": probability,
                "top_k": [{"label": classes[index], "index": index, "probability": probability}],
                "probabilities": probabilities,
            }
        )
    return json.dumps({"predictions": predictions}).encode()


def json_request(*images: bytes) -> bytes:
    return json.dumps(
        {"instances": [{"b64": base64.b64encode(i).decode()} for i in images]}
    ).encode()


def write_captures(
    client: Any,
    spool: Path,
    requests: Sequence[tuple[str, bytes, bytes]],
    endpoint: str = "digits",
    destination: str = "s3://bkt/datacapture",
    when: dt.datetime | None = None,
    inference_ids: Sequence[str] = (),
) -> None:
    """Capture (request type, request body, answer) triples through CaptureWriter into S3."""
    writer = CaptureWriter(spool, s3_uploader(client))
    at = when or NOW
    for n, (request_type, body, reply) in enumerate(requests):
        writer.record(
            Capture(
                endpoint=endpoint,
                variant="AllTraffic",
                destination=destination,
                json_types=("application/json",),
                request_type=request_type,
                request_body=body,
                response_type="application/json",
                response_body=reply,
                inference_id=inference_ids[n] if n < len(inference_ids) else "",
                time=at + dt.timedelta(seconds=n),
            )
        )
    writer.flush()
    assert writer.upload_errors == 0
