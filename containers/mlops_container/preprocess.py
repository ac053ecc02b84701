"""Preprocess processing step: de-duplicate, split, resize, and write the monitoring baseline.

Outputs under ``--output-dir``: ``train/``, ``validation/``, ``test/`` (each ``data.npz``
with uint8 ``images`` N×H×W×3, int64 ``labels``, ``source_refs``, plus ``classes.json``
and ``normalization.json``), ``meta/`` (classes + normalization from the train split)
and ``baseline/`` (Model Monitor ``statistics.json`` and ``constraints.json``).

Example::

    python3 -m mlops_container.preprocess --input-dir /opt/ml/processing/input/data \\
        --output-dir /opt/ml/processing/output --image-size 32
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import contract, shards, splits
from .errors import UserError, run_entrypoint
from .features import build_constraints, build_statistics, image_features
from .images import content_hash, open_image, to_rgb_array
from .manifest import DEFAULT_LABEL_ATTRIBUTE, load_records, read_classes, resolve_source_ref
from .stratified import stratified_split

SPLITS = (contract.TRAIN_CHANNEL, contract.VALIDATION_CHANNEL, contract.TEST_SPLIT)


@dataclass
class Prepared:
    """The de-duplicated dataset, resized, with per-image features of the originals."""

    images: np.ndarray
    labels: np.ndarray
    refs: np.ndarray
    features: list[dict[str, float]]
    duplicates: int


def build_parser() -> argparse.ArgumentParser:
    """The preprocess step's command line."""
    parser = argparse.ArgumentParser(
        prog="python3 -m mlops_container.preprocess",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--input-dir", type=Path, default=contract.processing_path(contract.PROCESSING_INPUT_DATA)
    )
    parser.add_argument(
        "--output-dir", type=Path, default=contract.processing_path(contract.PROCESSING_OUTPUT)
    )
    parser.add_argument("--dataset-uri", default=None, help="root URI of the source-refs")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--val-fraction", type=float, default=splits.VAL_FRACTION)
    parser.add_argument("--test-fraction", type=float, default=splits.TEST_FRACTION)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--label-attribute", default=DEFAULT_LABEL_ATTRIBUTE)
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Reject sizes and fractions that cannot make three non-empty splits."""
    if not 4 <= args.image_size <= 1024:
        raise UserError(f"--image-size must be in [4, 1024], got {args.image_size}")
    fractions = (args.val_fraction, args.test_fraction)
    if not all(0 < f < 1 for f in fractions) or sum(fractions) >= 1:
        raise UserError(
            "--val-fraction and --test-fraction must be in (0, 1) and sum below 1; "
            f"got {args.val_fraction} and {args.test_fraction}"
        )


def load_dataset(args: argparse.Namespace, num_classes: int) -> Prepared:
    """Read every manifest image once: hash, features on the original, resized RGB array."""
    records = load_records(args.input_dir / contract.MANIFEST_FILE, args.label_attribute)
    seen: set[str] = set()
    images, labels, refs, rows, duplicates = [], [], [], [], 0
    for record in records:
        if not 0 <= record.label < num_classes:
            raise UserError(f"line {record.line}: label {record.label} is not in classes.json")
        path = resolve_source_ref(record.source_ref, args.input_dir, args.dataset_uri)
        try:
            image = open_image(path)
        except (OSError, ValueError, SyntaxError) as error:
            raise UserError(f"cannot read {record.source_ref} ({path}): {error}") from error
        digest = content_hash(image)
        if digest in seen:
            duplicates += 1
            continue
        seen.add(digest)
        rows.append(image_features(image))
        images.append(to_rgb_array(image, args.image_size))
        labels.append(record.label)
        refs.append(record.source_ref)
    return Prepared(
        np.stack(images), np.asarray(labels, dtype=np.int64), np.asarray(refs), rows, duplicates
    )


def split_indices(labels: np.ndarray, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Seeded stratified train/validation/test indices (sorted within each split)."""
    indices = np.arange(len(labels))
    try:
        rest, test_idx = stratified_split(indices, labels, test, seed)
        train_idx, val_idx = stratified_split(rest, labels[rest], val / (1 - test), seed)
    except ValueError as error:
        raise UserError(
            f"cannot make a stratified split ({error}); every class needs enough "
            "examples for train, validation and test — add images or lower "
            "the fractions"
        ) from error
    return dict(zip(SPLITS, (np.sort(train_idx), np.sort(val_idx), np.sort(test_idx)), strict=True))


def normalization(images: np.ndarray) -> dict[str, list[float]]:
    """Per-channel mean and std on the 0..1 scale."""
    pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
    return {
        "mean": pixels.mean(axis=0).round(6).tolist(),
        "std": np.maximum(pixels.std(axis=0), 1e-6).round(6).tolist(),
    }


def write_json(path: Path, value: object) -> None:
    """Write pretty JSON, creating the parent directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")


def preprocess(args: argparse.Namespace) -> dict[str, int]:
    """Run the step; return the split sizes."""
    check_args(args)
    classes = read_classes(args.input_dir / contract.CLASSES_FILE)
    data = load_dataset(args, len(classes))
    splits = split_indices(data.labels, args.val_fraction, args.test_fraction, args.seed)
    out = args.output_dir
    norm = normalization(data.images[splits[contract.TRAIN_CHANNEL]])
    write_json(out / contract.META_OUTPUT / contract.CLASSES_FILE, classes)
    write_json(out / contract.META_OUTPUT / contract.NORMALIZATION_FILE, norm)
    for name, idx in splits.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        np.savez(
            out / name / contract.DATA_FILE,
            images=data.images[idx],
            labels=data.labels[idx],
            source_refs=data.refs[idx],
        )
        for meta in (contract.CLASSES_FILE, contract.NORMALIZATION_FILE):
            shutil.copyfile(out / contract.META_OUTPUT / meta, out / name / meta)
    statistics = build_statistics(data.features, [classes[i] for i in data.labels])
    write_json(out / contract.BASELINE_OUTPUT / contract.STATISTICS_FILE, statistics)
    write_json(
        out / contract.BASELINE_OUTPUT / contract.CONSTRAINTS_FILE, build_constraints(statistics)
    )
    sizes = {name: len(idx) for name, idx in splits.items()}
    print(
        f"splits train={sizes['train']} validation={sizes['validation']} test={sizes['test']} "
        f"duplicates_removed={data.duplicates} image_size={args.image_size}",
        flush=True,
    )
    return sizes


def _job(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    args.input_dir = shards.materialize(args.input_dir)
    preprocess(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: preprocess under the failure contract (reason in output/message)."""
    return run_entrypoint(_job, argv, contract.path(contract.MESSAGE_PATH))


if __name__ == "__main__":
    sys.exit(main())
