"""``data import capture``: an endpoint's labeled captures as a dataset for the next training run.

Joins the endpoint's captured images (``serving.captured``) with the ground truth given for them
(``serving.groundtruth``: from ``label --from-capture`` or any tool writing SageMaker's format),
writes the labeled ones to a folder with a ``filename,class`` list and imports that with the
image's importer (the ``unlabeled`` kind with labels: human-annotated), so the dataset has the
layout every other import has: ``images/<class>/``, ``manifest.jsonl``, ``classes.json`` and the
shard the pipeline reads, under ``s3://BUCKET/datasets/NAME/``.
"""

from __future__ import annotations

import csv
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_mlops.config import Settings
from local_mlops.devenv import processes
from local_mlops.errors import LocalMlopsError
from local_mlops.pipeline import datasets
from local_mlops.s3 import s3_client
from local_mlops.serving.captured import (
    CapturedImage,
    capture_location,
    no_captures_error,
    read_captured,
)
from local_mlops.serving.groundtruth import ground_truth_prefix, read_ground_truth

LABELS_FILE = "labels.csv"


@dataclass
class LabeledCaptures:
    """The captured images that have ground truth, and the labeled ones that cannot be used."""

    labeled: list[tuple[CapturedImage, str]] = field(default_factory=list)
    undecodable: list[CapturedImage] = field(default_factory=list)
    captured: int = 0

    def counts(self) -> Counter[str]:
        return Counter(label for _, label in self.labeled)


def labeled_captures(settings: Settings, client: Any, endpoint: str) -> LabeledCaptures:
    """Join the endpoint's captures with their ground truth (clear errors when there is none)."""
    location = capture_location(settings, endpoint)
    images = read_captured(client, location)
    if not images:
        raise no_captures_error(location, None)
    truth = read_ground_truth(client, settings.bucket, endpoint)
    found = LabeledCaptures(captured=len(images))
    for image in images:
        label = truth.get((image.join_key, image.position))
        if label is None:
            continue
        if image.problem:
            found.undecodable.append(image)
        else:
            found.labeled.append((image, label))
    if not found.labeled:
        where = f"s3://{settings.bucket}/{ground_truth_prefix(endpoint)}"
        raise LocalMlopsError(
            f"none of the {len(images)} captured images of {endpoint} is labeled (no ground "
            f"truth for them under {where})",
            f"label some: local-mlops label --from-capture {endpoint}",
        )
    return found


def write_folder(found: LabeledCaptures, folder: Path) -> Path:
    """The labeled images as files plus ``labels.csv`` (filename,class); returns the CSV."""
    images = folder / "images"
    images.mkdir(parents=True)
    labels = folder / LABELS_FILE
    with labels.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "class"])
        for image, label in found.labeled:
            tail = f"-{image.position}" if image.count > 1 else ""
            name = f"{image.event_id}{tail}{Path(image.key).suffix}"
            (images / name).write_bytes(image.data)
            writer.writerow([name, label])
    return labels


def import_capture(
    settings: Settings, endpoint_url: str, endpoint: str, name: str | None, say: Any = print
) -> str:
    """Import the labeled captures of ``endpoint`` as dataset ``name``; returns its S3 URI."""
    found = labeled_captures(settings, s3_client(settings, endpoint_url), endpoint)
    for image in found.undecodable:
        say(f"Left out a labeled capture that cannot be decoded: {image.key}: {image.problem}")
    per_class = ", ".join(f"{k}={v}" for k, v in sorted(found.counts().items()))
    say(f"{len(found.labeled)} of {found.captured} captured images are labeled ({per_class}).")
    with tempfile.TemporaryDirectory(
        prefix="local-mlops-capture-", dir=processes.work_root()
    ) as tmp:
        processes.claim_folder(Path(tmp), processes.project_of(settings))
        labels = write_folder(found, Path(tmp))
        return datasets.import_dataset(
            settings,
            endpoint_url,
            "unlabeled",
            name or f"capture-{endpoint}",
            Path(tmp) / "images",
            labels=labels,
            say=say,
            title=f"the labeled captures of {endpoint}",
        )
