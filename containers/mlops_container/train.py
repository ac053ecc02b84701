"""Training entry point (the image's ``train`` command), following the SageMaker contract.

Reads ``<base>/input/config/hyperparameters.json`` and the ``train``/``validation``
(optional ``pretrained``) channels; writes the model artifact to ``<base>/model/``,
``metrics.json`` to ``<base>/output/data/``, checkpoints every epoch and resumes from
the latest one. One metric line per epoch, in the format of :data:`METRIC_DEFINITIONS`.

Example::

    SAGEMAKER_BASE_DIR=/tmp/job python3 -m mlops_container.train
"""

from __future__ import annotations

import argparse
import copy
import json
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import checkpoints, contract, hyperparameters, onnx_export
from .contract import find_file
from .distributed import Cluster, Group, read_cluster
from .errors import UserError, exit_now, run_entrypoint
from .hyperparameters import Hyperparameters
from .loop import (
    Split,
    evaluate_split,
    make_optimizer,
    make_scheduler,
    run_epoch,
    set_backbone_trainable,
)
from .models import (
    build_model,
    download_imagenet_weights,
    load_backbone_weights,
    read_state_dict,
    save_artifact,
)

METRIC_NAMES = contract.METRIC_NAMES
METRIC_DEFINITIONS = contract.METRIC_DEFINITIONS


@dataclass(frozen=True)
class JobPaths:
    """Where the job reads and writes (all under the contract's base dir by default)."""

    train: Path
    validation: Path
    pretrained: Path
    model: Path
    output_data: Path
    checkpoints: Path
    hyperparameters: Path


def build_parser() -> argparse.ArgumentParser:
    """Optional overrides of the contract paths (SageMaker passes no arguments)."""
    parser = argparse.ArgumentParser(
        prog="python3 -m mlops_container.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--hyperparameters", type=Path, default=contract.path(contract.HYPERPARAMETERS_PATH)
    )
    parser.add_argument("--train", type=Path, default=contract.channel_dir(contract.TRAIN_CHANNEL))
    parser.add_argument(
        "--validation", type=Path, default=contract.channel_dir(contract.VALIDATION_CHANNEL)
    )
    parser.add_argument(
        "--pretrained", type=Path, default=contract.channel_dir(contract.PRETRAINED_CHANNEL)
    )
    parser.add_argument("--model-dir", type=Path, default=contract.path(contract.MODEL_PATH))
    parser.add_argument(
        "--output-data-dir", type=Path, default=contract.path(contract.OUTPUT_DATA_PATH)
    )
    parser.add_argument("--checkpoint-dir", type=Path, default=contract.checkpoint_dir())
    return parser


def load_split(channel: Path, label: str) -> Split:
    """Load a preprocess ``data.npz`` into tensors (the whole split fits in memory)."""
    data_file = find_file(channel, contract.DATA_FILE)
    if data_file is None:
        raise UserError(
            f"no {contract.DATA_FILE} in the {label!r} channel ({channel}); "
            "pass the preprocess step's output"
        )
    with np.load(data_file) as data:
        images = torch.from_numpy(np.ascontiguousarray(data["images"].transpose(0, 3, 1, 2)))
        labels = torch.from_numpy(data["labels"].astype(np.int64))
    if len(labels) == 0:
        raise UserError(f"the {label!r} channel ({data_file}) holds no images")
    return Split(images, labels)


def read_meta(channel: Path, train: Split) -> tuple[list[str], dict[str, list[float]]]:
    """Class names and normalization from the train channel (computed when absent)."""
    classes_file = find_file(channel, contract.CLASSES_FILE)
    if classes_file is None:
        raise UserError(f"no {contract.CLASSES_FILE} in the train channel ({channel})")
    classes = json.loads(classes_file.read_text())
    norm_file = find_file(channel, contract.NORMALIZATION_FILE)
    if norm_file is not None:
        return classes, json.loads(norm_file.read_text())
    pixels = train.images.float().div(255).transpose(0, 1).reshape(3, -1)
    return classes, {"mean": pixels.mean(1).tolist(), "std": pixels.std(1).clamp_min(1e-6).tolist()}


def initial_weights(model: nn.Module, hp: Hyperparameters, paths: JobPaths) -> None:
    """Apply ``weights``: none, imagenet (channel file or download), or channel."""
    if hp.weights == "none":
        return
    files = (
        sorted(p for p in paths.pretrained.rglob("*") if p.suffix in {".pt", ".pth"})
        if paths.pretrained.is_dir()
        else []
    )
    backbone = model.backbone  # type: ignore[union-attr]
    if files:
        state = read_state_dict(files[0])
        print(f"loading pretrained weights from {files[0]}", flush=True)
    elif hp.weights == "channel":
        raise UserError(
            "weights=channel needs a state dict (.pt/.pth) in the 'pretrained' "
            f"channel ({paths.pretrained})"
        )
    else:
        state = download_imagenet_weights(hp.backbone)
        cache = paths.output_data / "pretrained" / f"{hp.backbone}-imagenet.pth"
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, cache)
    assert isinstance(backbone, nn.Module)
    load_backbone_weights(backbone, state, hp.backbone)


def format_metrics(epoch: int, epochs: int, m: dict[str, float]) -> str:
    """The stable per-epoch metric line the metric regexes read."""
    return (
        f"epoch={epoch}/{epochs} train_loss={m['train_loss']:.4f} "
        f"train_accuracy={m['train_accuracy']:.4f} val_loss={m['val_loss']:.4f} "
        f"val_accuracy={m['val_accuracy']:.4f} images_per_sec={m['images_per_sec']:.1f}"
    )


def configure_torch(seed: int) -> None:
    """Threads = CPUs given to this container, deterministic kernels, seeded global RNGs."""
    torch.set_num_threads(contract.num_cpus())
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def resume_state(paths: JobPaths, hp: Hyperparameters, num_classes: int) -> dict[str, Any] | None:
    """The latest checkpoint, checked to belong to the same kind of model."""
    state = checkpoints.load(paths.checkpoints)
    if state is None:
        return None
    if state["architecture"] != hp.backbone or state["num_classes"] != num_classes:
        raise UserError(
            f"checkpoint in {paths.checkpoints} is for {state['architecture']} with "
            f"{state['num_classes']} classes, not {hp.backbone} with {num_classes}; "
            "use a fresh checkpoint directory"
        )
    return state


@dataclass
class Progress:
    """What a checkpoint carries between runs: finished epochs and the best one so far."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"val_accuracy": -1.0})
    best_weights: dict[str, torch.Tensor] = field(default_factory=dict)


def restore(
    state: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> Progress:
    """Load a checkpoint into the model, optimizer and scheduler."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    print(f"resuming from checkpoint after epoch {state['epoch']}", flush=True)
    best_weights = state["best_weights"]
    if best_weights is None:  # the checkpoint's own epoch was the best one
        best_weights = {name: tensor.clone() for name, tensor in state["model"].items()}
    return Progress(state["epoch"], state["history"], state["best"], best_weights)


def checkpoint_state(
    hp: Hyperparameters,
    num_classes: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    progress: Progress,
) -> dict[str, Any]:
    """What a checkpoint holds; ``best_weights`` is None when this epoch is the best so far
    (they equal ``model``), which keeps a third of the file off the disk on improving epochs."""
    best_is_current = progress.best.get("epoch") == progress.epoch
    return {
        "epoch": progress.epoch, "architecture": hp.backbone, "num_classes": num_classes,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "history": progress.history,
        "best": progress.best, "best_weights": None if best_is_current else progress.best_weights,
        "hyperparameters": asdict(hp),
    }  # fmt: skip


def start_state(
    group: Group, paths: JobPaths, hp: Hyperparameters, num_classes: int
) -> dict[str, Any] | None:
    """The checkpoint to resume from: the leader's, broadcast so every rank starts equal."""
    if group.world == 1:
        return resume_state(paths, hp, num_classes)
    problem, state = "", None
    if group.is_leader:
        try:
            state = resume_state(paths, hp, num_classes)
        except UserError as error:
            problem = str(error)
    with group.guard("receiving the leader's checkpoint"):
        problem, state = group.broadcast_object((problem, state))
    if problem:
        raise UserError(problem)
    if state is not None and not group.is_leader:
        checkpoints.restore_rng(state["rng"])
    return state  # type: ignore[no-any-return]


def train(hp: Hyperparameters, paths: JobPaths, cluster: Cluster | None = None) -> dict[str, Any]:
    """Train (resuming when a checkpoint exists), write the artifact; return final metrics.

    With several hosts every rank trains its shard and only the leader (rank 0) writes the
    checkpoints, the artifact, metrics.json and history.json, and prints the metric lines.
    """
    configure_torch(hp.seed)
    group = Group(cluster or Cluster())
    group.start()
    try:
        with group.guard("training"):
            final = _train(hp, paths, group)
        if group.world > 1:
            # This host's part is done (the leader's outputs are written): local mode stops every
            # container once one exits, and that stop is no failure. The leader's exit decides.
            signal.signal(signal.SIGTERM, lambda *_: exit_now(0))
        with group.guard("waiting for the leader to write the model"):
            group.barrier()
    finally:
        group.close()
    if not group.is_leader:
        print(f"host {group.cluster.current_host}: done; the leader wrote the model", flush=True)
    return final


def _train(hp: Hyperparameters, paths: JobPaths, group: Group) -> dict[str, Any]:
    train_data = load_split(paths.train, contract.TRAIN_CHANNEL)
    val_data = load_split(paths.validation, contract.VALIDATION_CHANNEL)
    classes, norm = read_meta(paths.train, train_data)
    image_size = int(train_data.images.shape[-1])
    model = build_model(hp.backbone, len(classes), image_size, norm["mean"], norm["std"])
    optimizer = make_optimizer(model, hp)
    scheduler = make_scheduler(optimizer, hp.epochs)
    state = start_state(group, paths, hp, len(classes))
    if state is None:
        initial_weights(model, hp, paths)
        progress = Progress(best_weights=copy.deepcopy(model.state_dict()))
    else:
        progress = restore(state, model, optimizer, scheduler)
    started = time.perf_counter()
    writer = checkpoints.Writer(paths.checkpoints)
    try:
        splits = (train_data, val_data)
        run_epochs(hp, model, optimizer, scheduler, splits, len(classes), group, progress, writer)
        if not progress.history:
            raise UserError("no epoch ran and no checkpoint holds a trained model")
        if not group.is_leader:
            return progress.best
        data_meta = {"classes": classes, "image_size": image_size, "normalization": norm}
        seconds = time.perf_counter() - started
        meta = {**data_meta, "instances": group.world}
        return finish(model, progress, hp, paths, meta, seconds, val_data.images)
    finally:
        writer.wait()  # the last checkpoint (written while the model is exported) is on disk


def run_epochs(
    hp: Hyperparameters,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    splits: tuple[Split, Split],
    num_classes: int,
    group: Group,
    progress: Progress,
    writer: checkpoints.Writer,
) -> None:
    """The epochs still to run; the leader prints each metric line and checkpoints the epoch
    (written in the background while the next epoch trains)."""
    train_data, val_data = splits
    net: nn.Module = model
    trainable: bool | None = None
    for epoch in range(progress.epoch + 1, hp.epochs + 1):
        unfrozen = epoch > hp.freeze_epochs
        set_backbone_trainable(model, hp.backbone, trainable=unfrozen)
        if trainable != unfrozen:  # DDP covers the parameters that are trainable now
            trainable, net = unfrozen, group.wrap(model)
        generator = torch.Generator().manual_seed(hp.seed * 100_003 + epoch)
        loss, accuracy, speed = run_epoch(net, optimizer, train_data, hp, generator, group)
        scheduler.step()
        group.sync_buffers(model)
        val_loss, val_accuracy = evaluate_split(model, val_data, group)
        metrics = {
            "epoch": epoch,
            "train_loss": loss,
            "train_accuracy": accuracy,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "images_per_sec": speed,
        }
        progress.epoch = epoch
        progress.history.append(metrics)
        if val_accuracy > progress.best["val_accuracy"]:
            progress.best, progress.best_weights = metrics, copy.deepcopy(model.state_dict())
        if not group.is_leader:
            continue
        print(format_metrics(epoch, hp.epochs, metrics), flush=True)
        writer.save(checkpoint_state(hp, num_classes, model, optimizer, scheduler, progress))


def finish(
    model: nn.Module,
    progress: Progress,
    hp: Hyperparameters,
    paths: JobPaths,
    data_meta: dict[str, Any],
    seconds: float,
    validation_images: torch.Tensor,
) -> dict[str, Any]:
    """Write the best epoch's artifact (model.pt, model.onnx checked against it, model.json)
    and metrics.json; print the final line."""
    best = progress.best
    speeds = [h["images_per_sec"] for h in progress.history]
    final = {
        "val_accuracy": best["val_accuracy"],
        "val_loss": best["val_loss"],
        "train_loss": best["train_loss"],
        "train_accuracy": best["train_accuracy"],
        "best_epoch": int(best["epoch"]),
        "epochs": hp.epochs,
        "images_per_sec": round(sum(speeds) / len(speeds), 1),
        "train_seconds": round(seconds, 2),
    }
    model.load_state_dict(progress.best_weights)
    onnx_meta = onnx_export.export_checked(model, paths.model, validation_images)
    print(
        f"exported {contract.MODEL_ONNX_FILE}: max |torch - onnxruntime| = "
        f"{onnx_meta['max_abs_diff']:.2g} on {onnx_meta['checked_images']} validation images",
        flush=True,
    )
    save_artifact(
        paths.model,
        model,
        {
            "architecture": hp.backbone,
            "num_classes": len(data_meta["classes"]),
            **data_meta,
            "metrics": final,
            "hyperparameters": asdict(hp),
            "onnx": onnx_meta,
        },
    )
    paths.output_data.mkdir(parents=True, exist_ok=True)
    (paths.output_data / contract.METRICS_FILE).write_text(json.dumps(final, indent=1) + "\n")
    (paths.output_data / contract.HISTORY_FILE).write_text(json.dumps(progress.history) + "\n")
    print(
        f"final val_accuracy={final['val_accuracy']:.4f} val_loss={final['val_loss']:.4f}",
        flush=True,
    )
    return final


def _job(argv: Sequence[str] | None) -> None:
    args = build_parser().parse_args(argv)
    hp = hyperparameters.read(args.hyperparameters)
    paths = JobPaths(
        args.train,
        args.validation,
        args.pretrained,
        args.model_dir,
        args.output_data_dir,
        args.checkpoint_dir,
        args.hyperparameters,
    )
    print(f"hyperparameters {json.dumps(asdict(hp), sort_keys=True)}", flush=True)
    train(hp, paths, read_cluster())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: train under the failure contract (reason in output/failure)."""
    return run_entrypoint(_job, argv, contract.path(contract.FAILURE_PATH))


if __name__ == "__main__":
    exit_now(main())
