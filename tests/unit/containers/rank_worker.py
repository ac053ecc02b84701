"""The work of one rank in the two-process tests, in a module of its own name.

``spawn`` children import the target's module afresh from the parent's ``sys.path``; a test
module that imports ``conftest`` could then get another folder's ``conftest`` there.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from mlops_container import loop
from mlops_container.distributed import Cluster, Group
from mlops_container.hyperparameters import Hyperparameters


def epoch_on_rank(rank: int, world: int, port: int, data: Any, queue: Any) -> None:
    """One epoch of a tiny conv net with batch norm, augmented, on rank ``rank`` of ``world``."""
    os.environ.update({"MLOPS_DIST_MASTER_ADDR": "127.0.0.1", "MLOPS_DIST_PORT": str(port)})
    torch.set_num_threads(1)
    hosts = [f"algo-{i + 1}" for i in range(world)]
    group = Group(Cluster(hosts, hosts[rank]))
    group.start()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 3),
    )
    hp = Hyperparameters(batch_size=8, augment="flip", learning_rate=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    split = loop.Split(*data)
    generator = torch.Generator().manual_seed(7)
    loss, accuracy, _ = loop.run_epoch(group.wrap(model), optimizer, split, hp, generator, group)
    val = loop.evaluate_split(model, split, group)
    # Parameters, then the batch-norm running statistics (lists: no shared memory).
    weights = [t.detach().flatten().tolist() for t in [*model.parameters(), *model.buffers()]]
    queue.put((rank, weights, loss, accuracy, val))
    group.close()
