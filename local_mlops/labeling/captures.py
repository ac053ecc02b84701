"""Labeling an endpoint's captured images: each label saved is also ground truth in the bucket.

``CaptureSource`` offers the decodable images of an endpoint's data capture (``serving.captured``)
to the labeling page, with the endpoint's answer as the suggestion, and lists the ones that
cannot be shown. Whenever the labels change, ``GroundTruthWriter`` rewrites the ground truth
files in SageMaker's format (``serving.groundtruth``) under ``s3://BUCKET/groundtruth/ENDPOINT/``,
where the monitoring job reads them; the journal stays on this machine, one per endpoint, so a
later session (another ``--window``) continues it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local_mlops.errors import LocalMlopsError, brief_error
from local_mlops.labeling.session import JOURNAL_PATH, write_atomic
from local_mlops.labeling.sources import PlainSource
from local_mlops.serving.captured import (
    CapturedImage,
    CaptureLocation,
    model_classes,
    no_captures_error,
    read_captured,
)
from local_mlops.serving.groundtruth import ground_truth_prefix, ground_truth_record, list_keys

GROUND_TRUTH_FILE = "local-mlops-labels.jsonl"
INDEX_FILE = "captures.json"


@dataclass(frozen=True)
class Join:
    """What a labeling key stands for in ground truth: the request and the image in it."""

    join_key: str
    position: int
    count: int


class GroundTruthWriter:
    """Keeps ``groundtruth/ENDPOINT/yyyy/mm/dd/hh/local-mlops-labels.jsonl`` equal to the labels.

    Each request's line goes in the file of the hour it was last labelled; only files whose
    text changed are uploaded, and a file left with no labels (after an undo) is deleted.
    """

    def __init__(self, client: Any, bucket: str, endpoint: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = ground_truth_prefix(endpoint)
        self.uri = f"s3://{bucket}/{self.prefix}"
        # What an earlier session wrote is unknown text: rewritten or deleted at the first sync.
        self._written: dict[str, str | None] = {
            key: None
            for key in self._call(list_keys, client, bucket, self.prefix)
            if key.endswith("/" + GROUND_TRUTH_FILE)
        }

    def files(
        self, labels: Mapping[str, tuple[str, str]], index: Mapping[str, Join]
    ) -> dict[str, str]:
        """The ground truth files (key -> text) these labels make."""
        records: dict[str, tuple[list[str], str]] = {}
        for key, (name, at) in labels.items():
            join = index.get(key)
            if join is None:
                continue
            names, latest = records.get(join.join_key, ([], ""))
            names += [""] * (max(join.count, join.position + 1) - len(names))
            names[join.position] = name
            records[join.join_key] = (names, max(latest, at))
        lines: dict[str, list[str]] = {}
        for join_key in sorted(records):
            names, at = records[join_key]
            file = f"{self.prefix}{_hour_path(at)}/{GROUND_TRUTH_FILE}"
            lines.setdefault(file, []).append(json.dumps(ground_truth_record(join_key, names)))
        return {file: "\n".join(text) + "\n" for file, text in lines.items()}

    def sync(self, labels: Mapping[str, tuple[str, str]], index: Mapping[str, Join]) -> None:
        wanted = self.files(labels, index)
        for key, text in wanted.items():
            if self._written.get(key) != text:
                self._call(self._put, key, text)
                self._written[key] = text
        for key in [k for k in self._written if k not in wanted]:
            self._call(self.client.delete_object, Bucket=self.bucket, Key=key)
            del self._written[key]

    def _put(self, key: str, text: str) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=text.encode(), ContentType="application/jsonl"
        )

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return function(*args, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise LocalMlopsError(
                f"the labels are saved on this machine, but the ground truth under {self.uri} "
                f"could not be written: {brief_error(exc)}",
                "check `local-mlops status`; it is written again on the next label or restart",
            ) from exc


def _hour_path(at: str) -> str:
    """``2026-12-02T00:35:55.123`` -> ``2026/12/02/00`` (now, for a time that does not parse)."""
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        when = datetime.now(UTC)
    return when.strftime("%Y/%m/%d/%H")


class CaptureSource(PlainSource):
    """The decodable captured images of one endpoint (within a window), as labeling keys."""

    def __init__(
        self,
        client: Any,
        location: CaptureLocation,
        ground_truth_bucket: str,
        state_dir: Path,
        since: datetime | None = None,
    ) -> None:
        found = read_captured(client, location, since)
        if not found:
            raise no_captures_error(location, since)
        self.location = location
        self.images: dict[str, CapturedImage] = {i.key: i for i in found if not i.problem}
        self.undecodable = [i for i in found if i.problem]
        if not self.images:
            first = self.undecodable[0]
            raise LocalMlopsError(
                f"none of the {len(found)} captured images of {location.endpoint} can be "
                f"shown (the first, {first.key}: {first.problem})",
                "send the endpoint PNG or JPEG images with data capture on",
            )
        self.classes = model_classes(found)
        self.workdir = state_dir / "labeling" / f"capture-{location.bucket}-{location.endpoint}"
        window = f" since {since:%Y-%m-%d %H:%M} UTC" if since else ""
        bad = f", {len(self.undecodable)} undecodable" if self.undecodable else ""
        self.description = f"{location.uri}{window} ({len(self.images)} images{bad})"
        self.index = self._merge_index()
        self.ground_truth = GroundTruthWriter(client, ground_truth_bucket, location.endpoint)

    def _merge_index(self) -> dict[str, Join]:
        """The join of every image labelled in any session, kept beside the journal."""
        path = self.workdir / Path(JOURNAL_PATH).parent / INDEX_FILE
        saved: dict[str, Any] = {}
        if path.is_file():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise LocalMlopsError(
                    f"cannot read {path}: {exc}", "delete it; the next session rebuilds it"
                ) from exc
        index = {key: Join(*value) for key, value in saved.items()}
        index.update({key: Join(i.join_key, i.position, i.count) for key, i in self.images.items()})
        text = json.dumps({k: [j.join_key, j.position, j.count] for k, j in index.items()})
        write_atomic(path, text + "\n")
        return index

    def list_keys(self) -> list[str]:
        return sorted(self.images)

    def source_ref(self, key: str) -> str:
        image = self.images[key]
        return f"{image.capture_uri}#eventId={image.event_id}&position={image.position}"

    def read(self, key: str) -> bytes:
        image = self.images.get(key)
        if image is None:
            raise OSError(f"{key} is not a captured image of {self.location.endpoint}")
        return image.data

    def suggestion(self, key: str) -> tuple[str, float] | None:
        image = self.images.get(key)
        return image.suggestion if image else None

    def labels_changed(self, labels: Mapping[str, tuple[str, str]]) -> None:
        self.ground_truth.sync(labels, self.index)

    def publish(self, manifest: Path, classes: Path) -> str:
        return self.ground_truth.uri  # written on every change; the manifest stays here
