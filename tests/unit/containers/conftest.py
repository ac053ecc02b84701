"""Shared fixtures for the container code's unit tests: tiny datasets built on the fly."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Before any test module imports onnxruntime: no telemetry from test runs either.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
CONTAINERS = Path(__file__).parents[3] / "containers"
if str(CONTAINERS) not in sys.path:
    sys.path.insert(0, str(CONTAINERS))

from mlops_container.manifest import make_entry, write_classes, write_manifest  # noqa: E402

BASE_URI = "s3://bucket/datasets/tiny"


@pytest.fixture(autouse=True)
def base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the container contract at a temp dir for every test."""
    base = tmp_path / "opt_ml"
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    monkeypatch.delenv("MLOPS_CHECKPOINT_DIR", raising=False)
    monkeypatch.setenv("SM_NUM_CPUS", "2")
    return base


def pattern_image(label: int, variant: int, size: int = 8, mode: str = "L") -> Image.Image:
    """A learnable, distinct image: a bright bar whose position encodes the class."""
    rng = np.random.default_rng(label * 1000 + variant)
    pixels = rng.integers(0, 40, size=(size, size), dtype=np.uint8)
    pixels[:, (label * 2) % size] = 255
    pixels[(variant % size), (variant // size) % size] = 128  # makes every image unique
    image = Image.fromarray(pixels, mode="L")
    return image.convert(mode) if mode != "L" else image


def make_dataset(
    root: Path, classes: int = 3, per_class: int = 12, size: int = 8, mode: str = "L"
) -> list[dict]:
    """Write images + manifest.jsonl + classes.json like the importer does."""
    names = [f"c{i}" for i in range(classes)]
    entries = []
    for label, name in enumerate(names):
        for variant in range(per_class):
            relative = f"images/{name}/img_{variant:03d}.png"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            pattern_image(label, variant, size, mode).save(root / relative)
            entries.append(make_entry(f"{BASE_URI}/{relative}", label, name, "labeling-job/test"))
    write_manifest(root / "manifest.jsonl", entries)
    write_classes(root / "classes.json", names)
    return entries


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """A valid tiny dataset root (3 classes x 12 8x8 grayscale images)."""
    root = tmp_path / "dataset"
    make_dataset(root)
    return root


def read_json(path: Path) -> dict:
    """Load a JSON file."""
    return json.loads(path.read_text())
