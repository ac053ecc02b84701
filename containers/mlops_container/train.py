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
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import checkpoints, contract, hyperparameters
from .errors import UserError, run_entrypoint
from .hyperparameters import Hyperparameters
from .models import (
    build_model,
    download_imagenet_weights,
    head_prefix,
    load_backbone_weights,
    read_state_dict,
    save_artifact,
)

METRIC_NAMES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "images_per_sec")
METRIC_DEFINITIONS = [{"Name": n, "Regex": f"{n}=([0-9\\.]+)"} for n in METRIC_NAMES]
EVAL_BATCH = 256
AUGMENT_PAD = 4


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


@dataclass
class Split:
    """A split held in memory: uint8 NCHW images and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor


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


def find_file(channel: Path, name: str) -> Path | None:
    """``name`` directly in the channel, or anywhere below it (S3 prefixes may nest)."""
    if (channel / name).is_file():
        return channel / name
    return next(iter(sorted(channel.rglob(name))), None) if channel.is_dir() else None


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


def set_backbone_trainable(model: nn.Module, architecture: str, trainable: bool) -> None:
    """Freeze or unfreeze everything but the head (used for ``freeze_epochs``)."""
    head = "backbone." + head_prefix(architecture)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = trainable or name.startswith(head)


def augment_batch(images: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """``light``: random shifts (pad-and-crop); ``flip``: plus horizontal flips."""
    if mode == "none":
        return images
    size_h, size_w = images.shape[2:]
    padded = nn.functional.pad(images, [AUGMENT_PAD] * 4, mode="replicate")
    offsets = torch.randint(0, 2 * AUGMENT_PAD + 1, (len(images), 2), generator=generator)
    out = torch.stack(
        [padded[i, :, y : y + size_h, x : x + size_w] for i, (y, x) in enumerate(offsets.tolist())]
    )
    if mode == "flip":
        flips = torch.rand(len(images), generator=generator) < 0.5
        out[flips] = out[flips].flip(3)
    return out


def run_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Split,
    hp: Hyperparameters,
    generator: torch.Generator,
) -> tuple[float, float, float]:
    """One pass over shuffled train batches; returns (loss, accuracy, images/s)."""
    model.train()
    started = time.perf_counter()
    order = torch.randperm(len(data.labels), generator=generator)
    total_loss, correct = 0.0, 0
    for start in range(0, len(order), hp.batch_size):
        index = order[start : start + hp.batch_size]
        inputs = augment_batch(data.images[index].float().div_(255), hp.augment, generator)
        targets = data.labels[index]
        optimizer.zero_grad(set_to_none=True)
        logits = model(inputs)
        loss = nn.functional.cross_entropy(logits, targets)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(index)
        correct += int((logits.argmax(1) == targets).sum())
    seconds = time.perf_counter() - started
    count = len(order)
    return total_loss / count, correct / count, count / max(seconds, 1e-9)


@torch.inference_mode()
def evaluate_split(model: nn.Module, data: Split) -> tuple[float, float]:
    """Mean loss and accuracy on a split, in eval mode."""
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(data.labels), EVAL_BATCH):
        inputs = data.images[start : start + EVAL_BATCH].float().div_(255)
        targets = data.labels[start : start + EVAL_BATCH]
        logits = model(inputs)
        total_loss += float(nn.functional.cross_entropy(logits, targets, reduction="sum"))
        correct += int((logits.argmax(1) == targets).sum())
    return total_loss / len(data.labels), correct / len(data.labels)


def make_optimizer(model: nn.Module, hp: Hyperparameters) -> torch.optim.Optimizer:
    """AdamW or SGD with Nesterov momentum."""
    params = list(model.parameters())
    if hp.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=hp.learning_rate, momentum=0.9, nesterov=True, weight_decay=hp.weight_decay
        )
    return torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay per epoch over ``epochs`` (recomputed from ``epochs`` on resume)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: 0.5 * (1 + math.cos(math.pi * min(epoch, epochs) / epochs))
    )


def format_metrics(epoch: int, epochs: int, m: dict[str, float]) -> str:
    """The stable per-epoch metric line the metric regexes read."""
    return (
        f"epoch={epoch}/{epochs} train_loss={m['train_loss']:.4f} "
        f"train_accuracy={m['train_accuracy']:.4f} val_loss={m['val_loss']:.4f} "
        f"val_accuracy={m['val_accuracy']:.4f} images_per_sec={m['images_per_sec']:.1f}"
    )


def configure_torch(seed: int) -> None:
    """Threads = CPUs, deterministic kernels, seeded global RNGs."""
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


def train(hp: Hyperparameters, paths: JobPaths) -> dict[str, Any]:
    """Train (resuming when a checkpoint exists), write the artifact; return final metrics."""
    configure_torch(hp.seed)
    train_data = load_split(paths.train, contract.TRAIN_CHANNEL)
    val_data = load_split(paths.validation, contract.VALIDATION_CHANNEL)
    classes, norm = read_meta(paths.train, train_data)
    image_size = int(train_data.images.shape[-1])
    model = build_model(hp.backbone, len(classes), image_size, norm["mean"], norm["std"])
    optimizer = make_optimizer(model, hp)
    scheduler = make_scheduler(optimizer, hp.epochs)
    state = resume_state(paths, hp, len(classes))
    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"val_accuracy": -1.0}
    best_weights = copy.deepcopy(model.state_dict())
    first_epoch = 1
    if state is None:
        initial_weights(model, hp, paths)
    else:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, best, best_weights = state["history"], state["best"], state["best_weights"]
        first_epoch = state["epoch"] + 1
        print(f"resuming from checkpoint after epoch {state['epoch']}", flush=True)
    started = time.perf_counter()
    for epoch in range(first_epoch, hp.epochs + 1):
        set_backbone_trainable(model, hp.backbone, trainable=epoch > hp.freeze_epochs)
        generator = torch.Generator().manual_seed(hp.seed * 100_003 + epoch)
        loss, accuracy, speed = run_epoch(model, optimizer, train_data, hp, generator)
        scheduler.step()
        val_loss, val_accuracy = evaluate_split(model, val_data)
        metrics = {
            "epoch": epoch,
            "train_loss": loss,
            "train_accuracy": accuracy,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "images_per_sec": speed,
        }
        history.append(metrics)
        print(format_metrics(epoch, hp.epochs, metrics), flush=True)
        if val_accuracy > best["val_accuracy"]:
            best, best_weights = metrics, copy.deepcopy(model.state_dict())
        checkpoints.save(
            paths.checkpoints,
            {
                "epoch": epoch,
                "architecture": hp.backbone,
                "num_classes": len(classes),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "history": history,
                "best": best,
                "best_weights": best_weights,
                "hyperparameters": asdict(hp),
            },
        )
    if not history:
        raise UserError("no epoch ran and no checkpoint holds a trained model")
    final = finish(
        model,
        best_weights,
        best,
        history,
        hp,
        paths,
        {"classes": classes, "image_size": image_size, "normalization": norm},
        time.perf_counter() - started,
    )
    return final


def finish(
    model: nn.Module,
    best_weights: dict[str, torch.Tensor],
    best: dict[str, Any],
    history: list[dict[str, float]],
    hp: Hyperparameters,
    paths: JobPaths,
    data_meta: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """Write the best epoch's artifact and metrics.json; print the final line."""
    speeds = [h["images_per_sec"] for h in history]
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
    model.load_state_dict(best_weights)
    save_artifact(
        paths.model,
        model,
        {
            "architecture": hp.backbone,
            "num_classes": len(data_meta["classes"]),
            **data_meta,
            "metrics": final,
            "hyperparameters": asdict(hp),
        },
    )
    paths.output_data.mkdir(parents=True, exist_ok=True)
    (paths.output_data / contract.METRICS_FILE).write_text(json.dumps(final, indent=1) + "\n")
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
    train(hp, paths)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: train under the failure contract (reason in output/failure)."""
    return run_entrypoint(_job, argv, contract.path(contract.FAILURE_PATH))


if __name__ == "__main__":
    sys.exit(main())
