"""Ground Truth-style augmented manifests (JSON Lines) and their ``classes.json``.

The manifest is the single source of truth for labels; ``classes.json`` next to it lists
the class names in label order. Source-refs are mapped to local files by their path
relative to the dataset root (the directory holding the manifest).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from .contract import CLASSES_FILE, IMAGES_DIR
from .errors import UserError

DEFAULT_LABEL_ATTRIBUTE = "label"
LABEL_TYPE = "groundtruth/image-classification"


@dataclass(frozen=True)
class Record:
    """One labelled manifest line."""

    source_ref: str
    label: int
    class_name: str | None
    line: int
    split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def make_entry(
    source_ref: str,
    label: int,
    class_name: str,
    job_name: str,
    human_annotated: bool = False,
    label_attribute: str = DEFAULT_LABEL_ATTRIBUTE,
) -> dict[str, Any]:
    """Build one manifest line in the Ground Truth image-classification format."""
    return {
        "source-ref": source_ref,
        label_attribute: label,
        f"{label_attribute}-metadata": {
            "class-name": class_name,
            "confidence": 1.0,
            "type": LABEL_TYPE,
            "human-annotated": "yes" if human_annotated else "no",
            "creation-date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "job-name": job_name,
        },
    }


def write_manifest(path: Path, entries: list[dict[str, Any]]) -> None:
    """Write manifest lines (one compact JSON object per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, separators=(",", ":")) + "\n")


def iter_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Yield ``(line_number, object, parse_error)`` for each non-blank manifest line."""
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                yield number, None, f"not valid JSON: {error.msg} (column {error.colno})"
                continue
            if not isinstance(value, dict):
                yield number, None, "a manifest line must be a JSON object"
                continue
            yield number, value, None


def parse_record(obj: dict[str, Any], line: int, label_attribute: str) -> Record:
    """Turn a parsed manifest object into a :class:`Record` (ValueError says what is wrong)."""
    source_ref = obj.get("source-ref")
    if not isinstance(source_ref, str) or not source_ref:
        raise ValueError("missing 'source-ref'")
    label = obj.get(label_attribute)
    if isinstance(label, str) and label.strip().lstrip("-").isdigit():
        label = int(label)
    if not isinstance(label, int) or isinstance(label, bool):
        raise ValueError(f"missing or non-integer label attribute {label_attribute!r}")
    metadata = obj.get(f"{label_attribute}-metadata") or {}
    class_name = metadata.get("class-name") if isinstance(metadata, dict) else None
    split = obj.get("split")
    return Record(source_ref, label, class_name, line, split if isinstance(split, str) else None)


def load_records(path: Path, label_attribute: str = DEFAULT_LABEL_ATTRIBUTE) -> list[Record]:
    """Read every record of a manifest, failing on the first bad line (validate reports all)."""
    if not path.is_file():
        raise UserError(f"manifest not found: {path} (run the importer or check --input-dir)")
    records = []
    for number, obj, problem in iter_lines(path):
        if obj is None:
            raise UserError(f"{path}:{number}: {problem}; run the validate step for a report")
        try:
            records.append(parse_record(obj, number, label_attribute))
        except ValueError as error:
            raise UserError(f"{path}:{number}: {error}") from error
    if not records:
        raise UserError(f"manifest {path} is empty")
    return records


def write_classes(path: Path, classes: list[str]) -> None:
    """Write ``classes.json``: the ordered class names (index = label)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(classes, indent=1) + "\n", encoding="utf-8")


def read_classes(path: Path) -> list[str]:
    """Read ``classes.json`` (a JSON list of strings)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise UserError(
            f"{CLASSES_FILE} not found at {path}; it must sit next to the manifest"
        ) from error
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON: {error.msg}") from error
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise UserError(f"{path} must be a JSON list of class names")
    return value


def infer_dataset_uri(source_ref: str) -> str:
    """The dataset root a source-ref lives under: everything before its last ``/images/``."""
    marker = f"/{IMAGES_DIR}/"
    index = source_ref.rfind(marker)
    if index < 0:
        raise UserError(
            f"cannot infer the dataset root of {source_ref!r} (no '/{IMAGES_DIR}/' in it); "
            "pass --dataset-uri"
        )
    return source_ref[:index]


def resolve_source_ref(source_ref: str, input_dir: Path, dataset_uri: str | None = None) -> Path:
    """Map a source-ref to the local copy of the dataset downloaded into ``input_dir``.

    The dataset root URI (the manifest's own location, inferred when not given) is
    replaced by ``input_dir``; references outside the root or with ``..`` are rejected. A
    relative reference (as ``local-mlops label`` writes for a local folder) is relative to
    ``input_dir``.
    """
    if "://" not in source_ref and not source_ref.startswith("/") and not dataset_uri:
        relative_ref = PurePosixPath(source_ref)
        if ".." in relative_ref.parts or not relative_ref.parts:
            raise UserError(f"source-ref {source_ref!r} escapes the dataset folder")
        return input_dir.joinpath(*relative_ref.parts)
    root = (dataset_uri or infer_dataset_uri(source_ref)).rstrip("/")
    if not source_ref.startswith(root + "/"):
        raise UserError(f"source-ref {source_ref!r} is not under the dataset root {root!r}")
    relative = PurePosixPath(source_ref[len(root) + 1 :])
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise UserError(f"source-ref {source_ref!r} escapes the dataset root {root!r}")
    return input_dir.joinpath(*relative.parts)
