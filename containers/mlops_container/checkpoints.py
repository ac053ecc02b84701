"""Atomic training checkpoints, so a job killed mid-run resumes where it stopped.

One file holds everything to continue: model, optimizer, scheduler, the epoch just
finished, RNG states, and the best epoch's weights and metrics.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import contract
from .errors import UserError


def save(directory: Path, state: dict[str, Any]) -> Path:
    """Write the checkpoint to a temp file then rename it: a kill never leaves half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / contract.CHECKPOINT_FILE
    temp = directory / f".{contract.CHECKPOINT_FILE}.tmp"
    state = {**state, "rng": rng_states()}
    torch.save(state, temp)
    with temp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, target)
    return target


def load(directory: Path) -> dict[str, Any] | None:
    """The latest checkpoint in ``directory`` (None when there is none); restores RNG states."""
    target = directory / contract.CHECKPOINT_FILE
    if not target.is_file():
        return None
    try:
        # weights_only: tensors, numbers, strings and containers only. On spot training the file
        # comes from S3 (the checkpoint channel), so it must not be able to run code.
        state: dict[str, Any] = torch.load(target, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise UserError(
            f"checkpoint {target} is unreadable ({error}); delete it to start over"
        ) from error
    restore_rng(state["rng"])
    return state


def rng_states() -> dict[str, Any]:
    """Torch, numpy and Python RNG states, as tensors and plain values (``weights_only``-safe)."""
    kind, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    keys_tensor = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys_tensor, position, has_gauss, cached],
        "python": random.getstate(),
    }


def restore_rng(states: dict[str, Any]) -> None:
    """Restore the states saved by :func:`rng_states`."""
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    random.setstate(states["python"])
