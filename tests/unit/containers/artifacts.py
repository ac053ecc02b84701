"""A small model artifact written without training, for evaluation and serving tests."""

from __future__ import annotations

import tarfile
from pathlib import Path

import torch

from mlops_container import onnx_export
from mlops_container.models import build_model, save_artifact

CLASSES = ["c0", "c1", "c2"]


def write_artifact(
    model_dir: Path, image_size: int = 8, archive: bool = False, onnx: bool = False
) -> Path:
    """model.pt + model.json (+ model.onnx), or only model.tar.gz of them, for a seeded model."""
    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small", len(CLASSES), image_size, [0.5] * 3, [0.25] * 3)
    model.eval()
    files = model_dir / "files" if archive else model_dir
    if onnx:
        files.mkdir(parents=True, exist_ok=True)
        onnx_export.export(model, files / "model.onnx", image_size)
    save_artifact(
        files,
        model,
        {
            "architecture": "mobilenet_v3_small",
            "num_classes": len(CLASSES),
            "classes": CLASSES,
            "image_size": image_size,
            "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3},
            "metrics": {},
        },
    )
    if archive:
        with tarfile.open(model_dir / "model.tar.gz", "w:gz") as tar:
            for path in files.iterdir():
                tar.add(path, arcname=path.name)
        for path in files.iterdir():
            path.unlink()
        files.rmdir()
    return model_dir
