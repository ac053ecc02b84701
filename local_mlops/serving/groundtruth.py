"""Ground truth for captured requests, in SageMaker's format, where the monitoring job reads it.

One JSON object a line (DESIGN.md, "Monitoring formats")::

    {"groundTruthData": {"data": "cat", "encoding": "CSV", "observedContentType": "text/csv"},
     "eventMetadata": {"eventId": "<the capture's inferenceId, else its eventId>"},
     "eventVersion": "0"}

under ``s3://BUCKET/groundtruth/ENDPOINT/yyyy/mm/dd/hh/*.jsonl`` (the hour the labels were
given, as SageMaker partitions uploaded labels). ``data`` is the true class name, the value the
endpoint answers as ``label``; a JSON request with several images gets one name per image,
comma-separated in request order (``"cat,,dog"``: the second image is not labeled). Readers
take the files in key order and a later line overrides an earlier one for the same image.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from local_mlops.errors import LocalMlopsError, brief_error

GROUND_TRUTH_PREFIX = "groundtruth"
CSV = "text/csv"


def ground_truth_prefix(endpoint: str) -> str:
    return f"{GROUND_TRUTH_PREFIX}/{endpoint}/"


def ground_truth_record(join_key: str, labels: Sequence[str]) -> dict[str, Any]:
    """The ground truth line for one captured request (one label per image, "" for none)."""
    return {
        "groundTruthData": {
            "data": ",".join(labels),
            "encoding": "CSV",
            "observedContentType": CSV,
        },
        "eventMetadata": {"eventId": join_key},
        "eventVersion": "0",
    }


def parse_ground_truth(text: str, truth: dict[tuple[str, int], str]) -> None:
    """Add one file's lines to ``truth`` ((join key, image position) -> class name)."""
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        data = record.get("groundTruthData")
        meta = record.get("eventMetadata")
        if not isinstance(data, dict) or not isinstance(meta, dict):
            continue
        key, value = meta.get("eventId"), data.get("data")
        if not key or not isinstance(value, str):
            continue
        for position, label in enumerate(value.split(",")):
            if label.strip():
                truth[(str(key), position)] = label.strip()


def read_ground_truth(client: Any, bucket: str, endpoint: str) -> dict[tuple[str, int], str]:
    """Every label given for an endpoint's captures, the latest file winning."""
    from botocore.exceptions import BotoCoreError, ClientError

    truth: dict[tuple[str, int], str] = {}
    prefix = ground_truth_prefix(endpoint)
    try:
        for key in sorted(list_keys(client, bucket, prefix)):
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            parse_ground_truth(body.decode("utf-8", errors="replace"), truth)
    except (BotoCoreError, ClientError) as exc:
        raise LocalMlopsError(
            f"cannot read the ground truth under s3://{bucket}/{prefix}: {brief_error(exc)}",
            "check `local-mlops status` and the bucket name",
        ) from exc
    return truth


def list_keys(client: Any, bucket: str, prefix: str) -> list[str]:
    """The ``*.jsonl`` keys under a prefix."""
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl"))
    return keys
