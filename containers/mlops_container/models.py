"""Model construction, transfer-learning weights, and the self-contained model artifact.

The artifact is ``model.pt`` (state dict) plus ``model.json`` (architecture, classes,
image size, normalization, metrics, versions). Normalization lives inside the model as
buffers, so a server feeds RGB float 0..1 NCHW tensors and guesses nothing.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from . import contract
from .errors import UserError

BACKBONES = ("resnet18", "mobilenet_v3_small")
# Inputs this small lose too much to the ImageNet stem's 4x downsampling.
SMALL_INPUT_MAX = 64
INPUT_DESCRIPTION = "RGB float 0..1 NCHW"
DOWNLOAD_TIMEOUT_SECONDS = 60.0


class NormalizedClassifier(nn.Module):
    """Normalizes 0..1 inputs with stored mean/std, then runs the backbone."""

    def __init__(self, backbone: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of RGB 0..1 images."""
        return self.backbone((x - self.mean) / self.std)  # type: ignore[operator]


def head_prefix(architecture: str) -> str:
    """State-dict key prefix of the classification head (replaced for n classes)."""
    return "fc." if architecture == "resnet18" else "classifier.3."


def build_backbone(architecture: str, num_classes: int, image_size: int) -> nn.Module:
    """A torchvision backbone adapted to small inputs, with a new head for ``num_classes``.

    For inputs <= 64 px the stem keeps its kernels (so ImageNet weights still load) but
    downsamples less: resnet drops the maxpool (a 32 px input reaches layer1 at 16x16, not
    8x8; stride-1 conv1 as well would cost 4x more compute for little gain on 2 CPUs), and
    mobilenet's first conv gets stride 1.
    """
    small = image_size <= SMALL_INPUT_MAX
    if architecture == "resnet18":
        resnet = torchvision.models.resnet18(weights=None)
        if small:
            resnet.maxpool = nn.Identity()  # type: ignore[assignment]
        resnet.fc = nn.Linear(resnet.fc.in_features, num_classes)
        return resnet
    if architecture == "mobilenet_v3_small":
        mobilenet = torchvision.models.mobilenet_v3_small(weights=None)
        if small:
            first = mobilenet.features[0][0]
            assert isinstance(first, nn.Conv2d)
            first.stride = (1, 1)
        last = mobilenet.classifier[3]
        assert isinstance(last, nn.Linear)
        mobilenet.classifier[3] = nn.Linear(last.in_features, num_classes)
        return mobilenet
    raise UserError(f"unknown backbone {architecture!r}; allowed: {', '.join(BACKBONES)}")


def build_model(
    architecture: str, num_classes: int, image_size: int, mean: list[float], std: list[float]
) -> NormalizedClassifier:
    """The full model: normalization + adapted backbone."""
    return NormalizedClassifier(build_backbone(architecture, num_classes, image_size), mean, std)


def load_backbone_weights(
    backbone: nn.Module, state: dict[str, torch.Tensor], architecture: str
) -> None:
    """Load pretrained weights, tolerating only a missing or differently-sized head."""
    head = head_prefix(architecture)
    own = backbone.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    bad = [k for k in state if k not in usable and not k.startswith(head)]
    missing = [k for k in own if k not in usable and not k.startswith(head)]
    if bad or missing:
        raise UserError(
            f"pretrained weights do not fit {architecture}: "
            f"{len(bad)} unexpected/mismatched keys (e.g. {bad[:3]}), "
            f"{len(missing)} missing keys (e.g. {missing[:3]}); pass a {architecture} state dict"
        )
    backbone.load_state_dict(usable, strict=False)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict safely (``weights_only``); unwrap ``{"state_dict": ...}`` files."""
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise UserError(f"cannot read pretrained weights {path}: {error}") from error
    if isinstance(value, dict) and isinstance(value.get("state_dict"), dict):
        value = value["state_dict"]
    if not isinstance(value, dict):
        raise UserError(f"{path} does not hold a state dict")
    return value


def download_imagenet_weights(architecture: str) -> dict[str, torch.Tensor]:
    """torchvision's DEFAULT ImageNet weights, or a clear failure when offline."""
    enum = torchvision.models.get_model_weights(architecture)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    try:
        state: dict[str, torch.Tensor] = enum.DEFAULT.get_state_dict(  # type: ignore[attr-defined]
            progress=False, weights_only=True
        )
        return state
    except (OSError, RuntimeError) as error:
        raise UserError(
            f"ImageNet weights for {architecture} could not be downloaded (offline?); pass a "
            "state-dict as the 'pretrained' channel or use weights=none"
        ) from error
    finally:
        socket.setdefaulttimeout(previous)


def save_artifact(model_dir: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write ``model.pt`` and ``model.json`` (``meta`` must describe the architecture)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), model_dir / contract.MODEL_WEIGHTS_FILE)
    full = {
        **meta,
        "input": INPUT_DESCRIPTION,
        "framework": {"torch": torch.__version__, "torchvision": torchvision.__version__},
    }
    (model_dir / contract.MODEL_META_FILE).write_text(json.dumps(full, indent=1) + "\n")


def load_model(model_dir: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from ``model.pt`` + ``model.json``; returns (model in eval mode, meta)."""
    meta_path = model_dir / contract.MODEL_META_FILE
    weights = model_dir / contract.MODEL_WEIGHTS_FILE
    if not meta_path.is_file() or not weights.is_file():
        raise UserError(
            f"{model_dir} must contain {contract.MODEL_WEIGHTS_FILE} and "
            f"{contract.MODEL_META_FILE} (the training job's model artifact)"
        )
    meta = json.loads(meta_path.read_text())
    norm = meta["normalization"]
    model = build_model(
        meta["architecture"],
        int(meta["num_classes"]),
        int(meta["image_size"]),
        norm["mean"],
        norm["std"],
    )
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    return model, meta
