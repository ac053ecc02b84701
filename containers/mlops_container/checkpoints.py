"""Atomic training checkpoints, so a job killed mid-run resumes where it stopped.

One file holds everything to continue: model, optimizer, scheduler, the epoch just
finished, RNG states, and the best epoch's weights and metrics. :class:`Writer` serializes
the state at once (a snapshot) and writes it to disk in a background thread, so the next
epoch trains while the previous checkpoint is flushed.
"""

from __future__ import annotations

import io
import os
import pickle
import random
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import contract
from .errors import UserError


def snapshot(state: dict[str, Any]) -> bytes:
    """The checkpoint file's bytes for ``state`` plus the RNG states of this moment."""
    buffer = io.BytesIO()
    torch.save({**state, "rng": rng_states()}, buffer)
    return buffer.getvalue()


def write(directory: Path, data: bytes) -> Path:
    """Write checkpoint bytes to a temp file, fsync, then rename: a kill never leaves half a
    file, and a crash of the machine leaves the previous checkpoint or this one."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / contract.CHECKPOINT_FILE
    temp = directory / f".{contract.CHECKPOINT_FILE}.tmp"
    with temp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, target)
    return target


def save(directory: Path, state: dict[str, Any]) -> Path:
    """Write the checkpoint now (see :class:`Writer` for writing in the background)."""
    return write(directory, snapshot(state))


class Writer:
    """Checkpoints written in a background thread, one at a time.

    :meth:`save` snapshots the state in the calling thread (later updates of the model or
    optimizer do not reach the file), waits for the previous write, and starts this one;
    :meth:`wait` blocks until the last write is on disk and raises its error, if any.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, state: dict[str, Any]) -> None:
        """Snapshot ``state`` now; write it once the previous checkpoint is written."""
        data = snapshot(state)
        self.wait()
        self._thread = threading.Thread(
            target=self._write, args=(data,), name="checkpoint-writer", daemon=True
        )
        self._thread.start()

    def _write(self, data: bytes) -> None:
        try:
            write(self.directory, data)
        except BaseException as error:  # re-raised in the training thread by wait()
            self._error = error

    def wait(self) -> None:
        """Block until the pending write is done; raise what it failed with."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise UserError(
                f"writing the checkpoint to {self.directory} failed ({error}); free disk space "
                f"or point {contract.CHECKPOINT_DIR_ENV} at a writable directory"
            ) from error


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
