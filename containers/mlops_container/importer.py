"""Import a dataset as a Ground Truth-style augmented manifest plus PNG images.

Writes ``OUTPUT/images/<class>/<name>.png``, ``OUTPUT/manifest.jsonl`` and
``OUTPUT/classes.json``; each source-ref is ``--base-uri`` joined with the image path,
so uploading OUTPUT to that URI makes the manifest valid there.

Example::

    python3 -m mlops_container.importer --dataset digits --output /tmp/digits \\
        --base-uri s3://bucket/datasets/digits
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from . import contract, splits
from .datasets import (
    Sample,
    SourceDataset,
    load_cifar10_source,
    load_digits_source,
    load_imagefolder_source,
    load_unlabeled_source,
)
from .errors import UserError, run_entrypoint
from .manifest import DEFAULT_LABEL_ATTRIBUTE, make_entry, write_classes, write_manifest

DATASETS = ("digits", "cifar10", "imagefolder", "unlabeled")
JOB_NAME_PREFIX = "labeling-job/local-mlops-import-"


def build_parser() -> argparse.ArgumentParser:
    """The importer's command line."""
    parser = argparse.ArgumentParser(
        prog="python3 -m mlops_container.importer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", choices=DATASETS, required=True)
    parser.add_argument("--output", type=Path, required=True, help="directory to write")
    parser.add_argument("--base-uri", required=True, help="s3://... or a local dir")
    parser.add_argument(
        "--source",
        "--data",
        dest="source",
        type=Path,
        default=None,
        help="cifar10 archive/dir, or the image folder",
    )
    parser.add_argument("--per-class", type=int, default=None, help="images per class (subset)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--labels", type=Path, default=None, help="labels for --dataset unlabeled")
    parser.add_argument("--label-attribute", default=DEFAULT_LABEL_ATTRIBUTE)
    parser.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="leave unreadable images out (each listed as a 'skipped:' line) instead of failing",
    )
    return parser


def load_source(args: argparse.Namespace) -> SourceDataset:
    """Dispatch to the loader of ``--dataset``."""
    need = splits.min_per_class()
    if args.per_class is not None and args.per_class < need:
        raise UserError(
            f"--per-class {args.per_class} is too few: the seeded train/validation/test split "
            f"needs at least {need} images per class"
        )
    if args.dataset == "digits":
        dataset = load_digits_source()
        if args.per_class:
            seen: Counter[str] = Counter()
            kept = []
            for sample in dataset.samples:
                seen[sample.class_name] += 1
                if seen[sample.class_name] <= args.per_class:
                    kept.append(sample)
            dataset.samples = kept
        return dataset
    if args.dataset == "cifar10":
        return load_cifar10_source(args.source, args.per_class, args.seed)
    if args.source is None:
        raise UserError(f"--dataset {args.dataset} needs --source DIR")
    if args.dataset == "imagefolder":
        return load_imagefolder_source(args.source, args.per_class)
    return load_unlabeled_source(args.source, args.labels)


def join_uri(base: str, relative: str) -> str:
    """Join a base URI (s3://... or a local path) and a relative POSIX path."""
    return f"{base.rstrip('/')}/{relative}"


def _decode(sample: Sample, skip_bad: bool, skipped: list[str]) -> Image.Image | None:
    """The sample's pixels; None (listed in ``skipped``) for an unreadable file when skipping."""
    try:
        return sample.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        where = sample.path or f"{sample.class_name}/{sample.name}"
        if not skip_bad:
            raise UserError(
                f"{where} cannot be read ({error}): remove it, or pass --skip-bad-images "
                "to import the other images and list the ones skipped"
            ) from error
        skipped.append(where)
        print(f"skipped: {where}: {error}", flush=True)
        return None


def import_dataset(args: argparse.Namespace) -> Counter[str]:
    """Write images, manifest and classes; return the image count per class."""
    dataset = load_source(args)
    if not dataset.samples:
        where = f" in {args.source}" if args.source else ""
        raise UserError(f"no labelled images found{where} for --dataset {args.dataset}")
    label_of = {name: index for index, name in enumerate(dataset.classes)}
    job_name = JOB_NAME_PREFIX + args.dataset
    entries, counts = [], Counter[str]()
    used: set[str] = set()
    skipped: list[str] = []
    for sample in dataset.samples:
        relative = f"{contract.IMAGES_DIR}/{sample.class_name}/{sample.name}.png"
        if relative in used:
            raise UserError(f"two images would be written to {relative}; rename one")
        image = _decode(sample, args.skip_bad_images, skipped)
        if image is None:
            continue
        used.add(relative)
        target = args.output / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, format="PNG")
        entries.append(
            make_entry(
                join_uri(args.base_uri, relative),
                label_of[sample.class_name],
                sample.class_name,
                job_name,
                dataset.human_annotated,
                args.label_attribute,
            )
        )
        counts[sample.class_name] += 1
    problem = splits.class_count_problem(dataset.classes, counts)
    if problem:
        raise UserError(problem)
    write_manifest(args.output / contract.MANIFEST_FILE, entries)
    write_classes(args.output / contract.CLASSES_FILE, dataset.classes)
    per_class = " ".join(f"{name}={counts[name]}" for name in dataset.classes)
    unlabeled = (
        f", unlabeled (not in manifest)={len(dataset.unlabeled)}" if dataset.unlabeled else ""
    )
    bad = f", skipped (unreadable)={len(skipped)}" if skipped else ""
    print(
        f"imported {len(entries)} images into {args.output}: {per_class}{unlabeled}{bad}",
        flush=True,
    )
    return counts


def _job(argv: Sequence[str] | None) -> None:
    import_dataset(build_parser().parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the import under the failure contract (reason in output/message)."""
    return run_entrypoint(_job, argv, contract.path(contract.MESSAGE_PATH))


if __name__ == "__main__":
    sys.exit(main())
