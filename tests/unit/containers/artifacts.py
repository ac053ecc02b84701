"""A small model artifact written without training, for evaluation and serving tests."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
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


def write_trained_artifact(
    model_dir: Path,
    images: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    steps: int = 15,
    onnx: bool = False,
) -> Path:
    """A resnet18 fitted for a few Adam steps on uint8 NHWC images (seconds, not an epoch loop),
    with ``model.onnx`` beside ``model.pt`` when ``onnx`` (as training writes it)."""
    torch.manual_seed(0)
    size = images.shape[1]
    model = build_model("resnet18", len(classes), size, [0.5] * 3, [0.25] * 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).float().div_(255)
    targets = torch.from_numpy(labels)
    model.train()
    for step in range(steps):
        batch = torch.arange(step * 32, step * 32 + 32) % len(inputs)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs[batch]), targets[batch]).backward()
        optimizer.step()
    model.eval()
    if onnx:
        model_dir.mkdir(parents=True, exist_ok=True)
        onnx_export.export(model, model_dir / "model.onnx", size)
    save_artifact(
        model_dir,
        model,
        {
            "architecture": "resnet18",
            "num_classes": len(classes),
            "classes": classes,
            "image_size": size,
            "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3},
            "metrics": {},
        },
    )
    return model_dir
