"""How many images a dataset needs for the seeded train/validation/test split.

The preprocessing step splits each class 70/15/15 (stratified, seeded). A class with fewer than
``min_per_class()`` images cannot put one image in both the validation and the test split, and
one class is no classifier at all: the importer refuses such datasets when they are imported
and the validation step when the pipeline runs, both with the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

VAL_FRACTION = 0.15
TEST_FRACTION = 0.15
MIN_CLASSES = 2
MAX_LISTED = 5


def min_per_class(val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION) -> int:
    """Images a class needs so that its share of the smaller held-out split is at least one."""
    return math.ceil(1 / min(val_fraction, test_fraction) - 1e-9)


def class_count_problem(classes: Sequence[str], counts: Mapping[str, int]) -> str | None:
    """Why these per-class image counts cannot be trained and evaluated (None when they can)."""
    if len(classes) < MIN_CLASSES:
        found = ", ".join(f"{name}: {counts.get(name, 0)} images" for name in classes) or "none"
        return (
            f"found {len(classes)} class ({found}); a classifier needs at least "
            f"{MIN_CLASSES} classes: add a folder or label per class"
        )
    need = min_per_class()
    short = [name for name in classes if counts.get(name, 0) < need]
    if not short:
        return None
    listed = ", ".join(f"{name}: {counts.get(name, 0)}" for name in short[:MAX_LISTED])
    more = f" and {len(short) - MAX_LISTED} more" if len(short) > MAX_LISTED else ""
    split = f"{1 - VAL_FRACTION - TEST_FRACTION:.0%}/{VAL_FRACTION:.0%}/{TEST_FRACTION:.0%}"
    return (
        f"{len(short)} of {len(classes)} classes have fewer than {need} images ({listed}{more}); "
        f"the seeded {split} split needs {need} per class to put at least one in validation "
        "and test: add images to those classes or leave them out"
    )
