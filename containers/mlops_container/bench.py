"""A bare PyTorch training loop, the yardstick for the training entry point's throughput.

No checkpoints, metrics, augmentation or evaluation: only batches from in-memory tensors,
forward, backward and an optimizer step, with the same model and thread count.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import contract
from .models import build_model


def bare_loop(
    npz_path: Path, backbone: str = "resnet18", epochs: int = 1, batch_size: int = 64
) -> float:
    """Train ``epochs`` passes over ``data.npz`` and return images per second."""
    torch.set_num_threads(contract.num_cpus())
    with np.load(npz_path) as data:
        images = torch.from_numpy(np.ascontiguousarray(data["images"].transpose(0, 3, 1, 2)))
        labels = torch.from_numpy(data["labels"].astype(np.int64))
    num_classes = int(labels.max()) + 1
    model = build_model(backbone, num_classes, int(images.shape[-1]), [0.5] * 3, [0.25] * 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(labels))
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(
                model(images[index].float().div_(255)), labels[index]
            )
            loss.backward()
            optimizer.step()
    return epochs * len(labels) / (time.perf_counter() - started)
