"""Checkpoints load with weights_only: a spot job's checkpoint comes from S3 and must not run code."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from mlops_container import checkpoints, contract
from mlops_container.errors import UserError


class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    torch.save({"epoch": 1, "extra": RunsCode(marker)}, tmp_path / contract.CHECKPOINT_FILE)

    with pytest.raises(UserError, match="is unreadable"):
        checkpoints.load(tmp_path)
    assert not marker.exists()


def test_a_saved_checkpoint_restores_every_rng_state(tmp_path: Path) -> None:
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    checkpoints.save(tmp_path, {"epoch": 2, "weights": {"w": torch.ones(2)}})
    expected = (torch.rand(1).item(), np.random.rand(), random.random())
    torch.rand(5), np.random.rand(5), random.random()  # move every generator on

    state = checkpoints.load(tmp_path)

    assert state is not None and state["epoch"] == 2
    assert (torch.rand(1).item(), np.random.rand(), random.random()) == expected
