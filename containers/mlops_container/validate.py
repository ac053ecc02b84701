"""Validation processing step: check a manifest and its images before anything trains on them.

Writes ``report.json`` with ``status`` passed/failed, counts, ``errors`` (hard findings)
and ``warnings`` (soft findings). Hard findings fail the step after the report is written.

Example::

    python3 -m mlops_container.validate --input-dir /opt/ml/processing/input/data \\
        --output-dir /opt/ml/processing/output/report --min-per-class 7
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import contract, shards, splits
from .errors import UserError, run_entrypoint
from .images import content_hash, open_image
from .manifest import DEFAULT_LABEL_ATTRIBUTE, Record, iter_lines, parse_record, read_classes
from .manifest import resolve_source_ref as resolve

MAX_LISTED = 5


@dataclass
class Findings:
    """Hard errors and soft warnings, each ``{"rule", "source-ref", "line", "message"}``."""

    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, hard: bool, rule: str, message: str, ref: str | None = None, line: int | None = None
    ) -> None:
        """Record one finding."""
        item = {"rule": rule, "source-ref": ref, "line": line, "message": message}
        (self.errors if hard else self.warnings).append(item)


def build_parser() -> argparse.ArgumentParser:
    """The validation step's command line."""
    parser = argparse.ArgumentParser(
        prog="python3 -m mlops_container.validate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--input-dir", type=Path, default=contract.processing_path(contract.PROCESSING_INPUT_DATA)
    )
    parser.add_argument(
        "--output-dir", type=Path, default=contract.processing_path(contract.PROCESSING_REPORT)
    )
    parser.add_argument("--dataset-uri", default=None, help="root URI of the source-refs")
    parser.add_argument(
        "--min-per-class",
        type=int,
        default=splits.min_per_class(),
        help="default: what the seeded split needs (see splits.py)",
    )
    parser.add_argument("--expected-mode", default="RGB,L", help="comma-separated PIL modes")
    parser.add_argument("--min-size", type=int, default=8)
    parser.add_argument("--max-size", type=int, default=4096)
    parser.add_argument("--label-attribute", default=DEFAULT_LABEL_ATTRIBUTE)
    return parser


def _read_records(manifest: Path, attribute: str, found: Findings) -> list[Record]:
    records = []
    for number, obj, problem in iter_lines(manifest):
        if obj is None:
            found.add(True, "manifest-parse", f"line {number}: {problem}", line=number)
            continue
        try:
            records.append(parse_record(obj, number, attribute))
        except ValueError as error:
            ref = obj.get("source-ref") if isinstance(obj.get("source-ref"), str) else None
            found.add(True, "manifest-parse", f"line {number}: {error}", ref, number)
    return records


def _check_label(record: Record, classes: list[str], found: Findings) -> bool:
    ref, line = record.source_ref, record.line
    if not 0 <= record.label < len(classes):
        found.add(
            True,
            "label-range",
            f"label {record.label} is outside the {len(classes)} classes in classes.json",
            ref,
            line,
        )
        return False
    expected = classes[record.label]
    if record.class_name is not None and record.class_name != expected:
        found.add(
            True,
            "class-name-mismatch",
            f"label {record.label} is class {expected!r} in classes.json but the line "
            f"says class-name {record.class_name!r}",
            ref,
            line,
        )
        return False
    return True


def _check_image(record: Record, args: argparse.Namespace, found: Findings) -> str | None:
    """Open one image; record problems; return its content hash when readable."""
    ref, line = record.source_ref, record.line
    try:
        path = resolve(ref, args.input_dir, args.dataset_uri)
    except UserError as error:
        found.add(True, "missing-image", str(error), ref, line)
        return None
    if not path.is_file():
        found.add(True, "missing-image", f"image file not found: {path}", ref, line)
        return None
    try:
        image = open_image(path)
    except (OSError, ValueError, SyntaxError) as error:
        found.add(True, "corrupt-image", f"image cannot be decoded: {error}", ref, line)
        return None
    modes = {m.strip() for m in args.expected_mode.split(",") if m.strip()}
    if modes and image.mode not in modes:
        found.add(False, "image-mode", f"mode {image.mode} not in {sorted(modes)}", ref, line)
    width, height = image.size
    if min(width, height) < args.min_size or max(width, height) > args.max_size:
        found.add(
            False,
            "image-size",
            f"size {width}x{height} outside [{args.min_size}, {args.max_size}]",
            ref,
            line,
        )
    return content_hash(image)


def _check_duplicates(hashed: list[tuple[Record, str]], found: Findings) -> None:
    first: dict[str, Record] = {}
    for record, digest in hashed:
        other = first.setdefault(digest, record)
        if other is record:
            continue
        ref, line = record.source_ref, record.line
        if other.label != record.label:
            found.add(
                True,
                "duplicate-conflicting-labels",
                f"same image as {other.source_ref} (line {other.line}) but label "
                f"{record.label} vs {other.label}",
                ref,
                line,
            )
        elif other.split and record.split and other.split != record.split:
            found.add(
                True,
                "split-leak",
                f"same image as {other.source_ref} in split {other.split!r} "
                f"and here in split {record.split!r}",
                ref,
                line,
            )
        else:
            found.add(
                False,
                "duplicate-image",
                f"same image as {other.source_ref} (line {other.line})",
                ref,
                line,
            )


def validate_dataset(args: argparse.Namespace) -> dict[str, Any]:
    """Apply every rule; return the report (status, counts, errors, warnings)."""
    found = Findings()
    manifest = args.input_dir / contract.MANIFEST_FILE
    if not manifest.is_file():
        raise UserError(f"no {contract.MANIFEST_FILE} in {args.input_dir}")
    records = _read_records(manifest, args.label_attribute, found)
    classes = read_classes(args.input_dir / contract.CLASSES_FILE)
    if not records and not found.errors:
        found.add(True, "empty-manifest", f"{manifest} has no records")
    hashed = []
    per_class: Counter[str] = Counter()
    for record in records:
        label_ok = _check_label(record, classes, found)
        digest = _check_image(record, args, found)
        if label_ok:
            per_class[classes[record.label]] += 1
        if digest is not None and label_ok:
            hashed.append((record, digest))
    _check_duplicates(hashed, found)
    if records and len(classes) < splits.MIN_CLASSES:
        found.add(True, "min-classes", str(splits.class_count_problem(classes, per_class)))
    if records:
        for name in classes:
            if per_class[name] < args.min_per_class:
                found.add(
                    True,
                    "min-per-class",
                    f"class {name!r} has {per_class[name]} examples, fewer than "
                    f"--min-per-class {args.min_per_class}",
                )
    counts = {
        "records": len(records),
        "classes": len(classes),
        "per_class": {name: per_class[name] for name in classes},
        "errors": len(found.errors),
        "warnings": len(found.warnings),
    }
    status = "failed" if found.errors else "passed"
    return {"status": status, "counts": counts, "errors": found.errors, "warnings": found.warnings}


def failure_message(report: dict[str, Any]) -> str:
    """One line naming the first problems with their source-refs."""
    listed = "; ".join(
        f"[{e['rule']}] {e['source-ref'] or 'manifest'}: {e['message']}"
        for e in report["errors"][:MAX_LISTED]
    )
    more = len(report["errors"]) - MAX_LISTED
    suffix = f"; and {more} more (see report.json)" if more > 0 else ""
    return f"validation failed with {len(report['errors'])} error(s): {listed}{suffix}"


def _job(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    args.input_dir = shards.materialize(args.input_dir)
    report = validate_dataset(args)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / contract.REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    counts = report["counts"]
    print(
        f"validation {report['status']}: {counts['records']} records, "
        f"{counts['errors']} errors, {counts['warnings']} warnings",
        flush=True,
    )
    if report["errors"]:
        raise UserError(failure_message(report))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: validate under the failure contract (reason in output/message)."""
    return run_entrypoint(_job, argv, contract.path(contract.MESSAGE_PATH))


if __name__ == "__main__":
    sys.exit(main())
