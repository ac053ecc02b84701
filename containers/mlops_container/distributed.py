"""Multi-instance training: SageMaker's ``resourceconfig.json`` and ``torch.distributed``.

SageMaker (and local mode) writes ``<base>/input/config/resourceconfig.json`` on every training
host: ``{"current_host": "algo-2", "hosts": ["algo-1", "algo-2"], "network_interface_name": ...}``.
With more than one host, every host joins one process group (gloo on CPU, NCCL with CUDA),
rendezvousing on the first host (the leader, rank 0). A lost peer must fail the job, not hang it:
the rendezvous and every collective have a timeout, and communication errors become a
:class:`PeerLostError` naming the peer hosts (written to ``output/failure`` like any job error).

The same hyperparameters train the same model as on one host: each step's global batch is split
between the ranks, DDP averages the gradients, and batch norm normalizes with the whole global
batch's statistics (:class:`GlobalBatchNorm2d`, torch's ``SyncBatchNorm`` on the CPU, which
torch's own refuses), not each rank's half.

Example (two processes on one machine, as the unit tests run it)::

    MLOPS_DIST_MASTER_ADDR=127.0.0.1 python3 -m mlops_container.train   # on each host
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from . import contract
from .errors import UserError

SINGLE_HOST = "algo-1"
# Words in the errors torch raises when a peer is gone or a collective timed out.
_LOST_PEER_WORDS = (
    "connection",
    "closed",
    "reset",
    "broken pipe",
    "timed out",
    "timeout",
    "gloo",
    "nccl",
    "peer",
    "socket",
)


class PeerLostError(UserError):
    """A peer host is gone or stopped answering: the job fails instead of hanging."""


@dataclass(frozen=True)
class Cluster:
    """The training hosts as SageMaker lists them; rank = position of ``current_host``."""

    hosts: list[str] = field(default_factory=lambda: [SINGLE_HOST])
    current_host: str = SINGLE_HOST
    interface: str = ""

    @property
    def world(self) -> int:
        return len(self.hosts)

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    @property
    def peers(self) -> list[str]:
        return [h for h in self.hosts if h != self.current_host]


def read_cluster(path: Path | None = None) -> Cluster:
    """The cluster from ``resourceconfig.json`` (absent: one host)."""
    path = path or contract.path(contract.RESOURCE_CONFIG_PATH)
    if not path.is_file():
        return Cluster()
    try:
        config = json.loads(path.read_text())
        hosts = [str(h) for h in config["hosts"]]
        current = str(config["current_host"])
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"{path} is not SageMaker's resource config ({error!r}): it needs "
            '"current_host" and "hosts"'
        ) from error
    if not hosts or current not in hosts:
        raise UserError(f"{path}: current_host {current!r} is not one of the hosts {hosts}")
    return Cluster(hosts, current, str(config.get("network_interface_name") or ""))


def _seconds(env: str, default: float) -> float:
    value = os.environ.get(env, "")
    try:
        return float(value) if value else default
    except ValueError:
        return default


def _first_sentence(error: BaseException) -> str:
    """gloo's errors go on with advice and an emoji after the first sentence: keep that one."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split(". ", 1)[0][:300]


def looks_like_lost_peer(error: BaseException) -> bool:
    """Whether an error from inside a collective reads like a lost peer or a timeout."""
    text = str(error).lower()
    return isinstance(error, OSError) or any(word in text for word in _LOST_PEER_WORDS)


class Group:
    """The job's process group (a no-op with one host): sums, broadcasts and barriers."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.world = cluster.world
        self.rank = cluster.rank
        self.is_leader = cluster.is_leader
        self.timeout = _seconds(contract.DIST_TIMEOUT_ENV, contract.DEFAULT_DIST_TIMEOUT_SECONDS)
        self.rendezvous_timeout = _seconds(
            contract.RENDEZVOUS_TIMEOUT_ENV, contract.DEFAULT_RENDEZVOUS_TIMEOUT_SECONDS
        )
        self.master = os.environ.get(contract.DIST_MASTER_ADDR_ENV) or cluster.hosts[0]
        self.port = int(os.environ.get(contract.DIST_PORT_ENV) or contract.DEFAULT_DIST_PORT)
        self.backend = "nccl" if torch.cuda.is_available() else "gloo"
        self.started = False

    def start(self) -> None:
        """Rendezvous on the leader and join the process group (nothing with one host)."""
        if self.world == 1:
            return
        if self.cluster.interface and self.backend == "gloo":
            os.environ.setdefault("GLOO_SOCKET_IFNAME", self.cluster.interface)
        deadline = time.monotonic() + self.rendezvous_timeout
        where = f"{self.cluster.hosts[0]} ({self.master}:{self.port})"
        print(
            f"host {self.cluster.current_host}: rank {self.rank} of {self.world}, "
            f"rendezvous on {where}, backend {self.backend}",
            flush=True,
        )
        try:
            self._wait_for_name(deadline)
            store = dist.TCPStore(
                self.master,
                self.port,
                self.world,
                is_master=self.is_leader,
                timeout=dt.timedelta(seconds=max(1.0, deadline - time.monotonic())),
                wait_for_workers=True,
            )
            dist.init_process_group(
                self.backend,
                store=store,
                rank=self.rank,
                world_size=self.world,
                timeout=dt.timedelta(seconds=self.timeout),
            )
        except (RuntimeError, OSError) as error:
            raise PeerLostError(
                f"host {self.cluster.current_host} could not rendezvous with the other "
                f"{self.world - 1} host(s) {self.cluster.peers} on {where} within "
                f"{self.rendezvous_timeout:.0f} s ({type(error).__name__}: {error}); "
                "check that every instance started and can reach the first host"
            ) from error
        self.started = True

    def _wait_for_name(self, deadline: float) -> None:
        """Followers may start before the leader's name resolves on the network: retry it."""
        while True:
            try:
                socket.getaddrinfo(self.master, self.port)
                return
            except socket.gaierror:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    @contextlib.contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        """Turn a communication error or collective timeout inside the block into a clear failure."""
        try:
            yield
        except (RuntimeError, OSError) as error:
            if self.world == 1 or not looks_like_lost_peer(error):
                raise
            raise PeerLostError(
                f"lost a peer while {doing}: host {self.cluster.current_host} (rank {self.rank} "
                f"of {self.world}) got {type(error).__name__}: {_first_sentence(error)} "
                f"(collective timeout {self.timeout:.0f} s); {self._peers_named()} "
                "stopped or became unreachable, see its log"
            ) from error

    def _peers_named(self) -> str:
        peers = self.cluster.peers
        return f"host {peers[0]}" if len(peers) == 1 else f"one of the hosts {peers}"

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over the ranks."""
        if self.world == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor)
        return [float(v) for v in tensor.tolist()]

    def maximum(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def broadcast_object(self, value: Any) -> Any:
        """The leader's ``value`` on every rank."""
        if self.world == 1:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def sync_buffers(self, model: nn.Module) -> None:
        """Give every rank the leader's buffers (batch-norm statistics): equal models."""
        if self.world == 1:
            return
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)

    def wrap(self, model: nn.Module) -> nn.Module:
        """``DistributedDataParallel`` over the trainable parameters, batch norm over the global
        batch (the model with one host). The buffers stay equal on every rank by construction,
        so DDP need not broadcast them before each forward."""
        if self.world == 1:
            return model
        use_global_batch_norm(model)
        return nn.parallel.DistributedDataParallel(model, forward_sync_buffers=False)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.started:
            with contextlib.suppress(RuntimeError):
                dist.destroy_process_group()
            self.started = False


class _SumOverRanks(torch.autograd.Function):
    """``all_reduce`` (sum) with its gradient: every rank's output is the sum, so each input's
    gradient is the sum of the outputs' gradients over the ranks."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics are the whole global batch's (all ranks): the
    per-channel sum and sum of squares are summed over the ranks in one collective, in float64.
    Evaluation (running statistics) and the state dict are plain ``BatchNorm2d``'s."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        channels = x.shape[1]
        wide = x.double()
        local = torch.cat(
            [
                wide.sum((0, 2, 3)),
                (wide * wide).sum((0, 2, 3)),
                torch.tensor([x.numel() / channels], dtype=torch.float64),
            ]
        )
        total = _SumOverRanks.apply(local)
        count = total[-1].detach()
        mean = total[:channels] / count
        var = (total[channels : 2 * channels] / count - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(mean.detach(), var.detach(), count.item())
        shape = (1, channels, 1, 1)
        scale = torch.rsqrt(var + self.eps).to(x.dtype)
        out = (x - mean.to(x.dtype).view(shape)) * scale.view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        """As ``BatchNorm2d`` does: the unbiased variance, momentum or a cumulative average."""
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        momentum = (
            self.momentum
            if self.momentum is not None
            else 1.0 / float(self.num_batches_tracked.item())
        )
        unbiased = var * (count / max(count - 1.0, 1.0))
        self.running_mean.mul_(1 - momentum).add_(mean.to(self.running_mean.dtype), alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(
            unbiased.to(self.running_var.dtype), alpha=momentum
        )


def use_global_batch_norm(model: nn.Module) -> None:
    """Make every ``BatchNorm2d`` of ``model`` a :class:`GlobalBatchNorm2d` in place: the same
    parameter and buffer tensors (an optimizer built before keeps working)."""
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = GlobalBatchNorm2d
