"""The monitored feature table: image statistics plus what the model makes of each image.

Both the baseline step (on the validation split) and the monitoring job (on captured
requests) build their rows with :func:`feature_table`, so the two sides compare like with like:
image statistics on the model's input, every class probability, the top-1 confidence, and a
few principal components of the penultimate-layer embedding. Softmax outputs are the
strongest shift detector in Rabanser et al. ("Failing Loudly", 2019); the embedding catches
input shift that leaves the predicted labels alone.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .archive import model_files_dir
from .features import FEATURE_NAMES, array_features
from .models import head_prefix, load_model

CONFIDENCE_FEATURE = "confidence"
PREDICTION_FEATURE = "prediction"
PROBABILITY_PREFIX = "prob_"
COMPONENT_PREFIX = "embedding_pc"
DEFAULT_COMPONENTS = 5
BATCH = 256


@dataclass
class Basis:
    """A PCA basis of the penultimate-layer embedding, fitted on the baseline."""

    mean: np.ndarray
    components: np.ndarray  # k × D
    explained_variance_ratio: np.ndarray

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        """Coordinates of ``embeddings`` (N × D) on the basis (N × k)."""
        return (embeddings - self.mean) @ self.components.T

    def to_json(self) -> dict[str, Any]:
        """The basis as plain lists (kept in the baseline output for the monitor)."""
        return {
            "mean": self.mean.round(7).tolist(),
            "components": self.components.round(7).tolist(),
            "explained_variance_ratio": self.explained_variance_ratio.round(6).tolist(),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Basis:
        """Rebuild a basis written by :meth:`to_json`."""
        return cls(
            np.asarray(value["mean"], dtype=np.float64),
            np.asarray(value["components"], dtype=np.float64).reshape(-1, len(value["mean"])),
            np.asarray(value["explained_variance_ratio"], dtype=np.float64),
        )


def fit_basis(embeddings: np.ndarray, components: int = DEFAULT_COMPONENTS) -> Basis:
    """PCA by SVD; each component's sign is fixed (largest loading positive) for stability."""
    mean = embeddings.mean(axis=0)
    centered = embeddings - mean
    _, singular, vt = np.linalg.svd(centered, full_matrices=False)
    k = max(1, min(components, vt.shape[0], max(1, len(embeddings) - 1)))
    vt = vt[:k]
    signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
    vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
    variance = singular**2
    ratio = variance[:k] / max(float(variance.sum()), 1e-12)
    return Basis(mean, vt, ratio)


class Featurizer:
    """Runs the model once per batch, keeping the softmax and the head's input (embedding)."""

    def __init__(self, model: nn.Module, meta: dict[str, Any]) -> None:
        self.model = model
        self.classes = [str(c) for c in meta["classes"]]
        self.image_size = int(meta["image_size"])
        backbone = getattr(model, "backbone", model)
        assert isinstance(backbone, nn.Module)
        head = backbone.get_submodule(head_prefix(str(meta["architecture"])).rstrip("."))
        self._captured: list[torch.Tensor] = []
        head.register_forward_pre_hook(lambda _module, args: self._captured.append(args[0]))

    @torch.inference_mode()
    def run(self, arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities N × C, embeddings N × D) for uint8 N×H×W×3 model-size images."""
        probabilities, embeddings = [], []
        for start in range(0, len(arrays), BATCH):
            chunk = torch.from_numpy(arrays[start : start + BATCH].transpose(0, 3, 1, 2).copy())
            self._captured.clear()
            logits = self.model(chunk.float().div_(255))
            probabilities.append(torch.softmax(logits, dim=1).numpy().astype(np.float64))
            embeddings.append(self._captured[-1].flatten(1).numpy().astype(np.float64))
        if not probabilities:
            return np.zeros((0, len(self.classes))), np.zeros((0, 0))
        return np.concatenate(probabilities), np.concatenate(embeddings)


def load_featurizer(model_dir: Path) -> Featurizer:
    """The model of a training artifact (``model.tar.gz`` or its files), ready to featurize."""
    with tempfile.TemporaryDirectory(prefix="model-") as scratch:
        model, meta = load_model(model_files_dir(model_dir, Path(scratch)))
    return Featurizer(model, meta)


def numeric_feature_names(classes: Sequence[str], components: int) -> list[str]:
    """Every numerical feature of the table, in the order statistics.json lists them."""
    return [
        *FEATURE_NAMES,
        *(f"{PROBABILITY_PREFIX}{c}" for c in classes),
        CONFIDENCE_FEATURE,
        *(f"{COMPONENT_PREFIX}{i + 1}" for i in range(components)),
    ]


def feature_table(
    featurizer: Featurizer,
    arrays: np.ndarray,
    sizes: Sequence[tuple[int, int]],
    basis: Basis | None,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(numeric columns, predicted class indices, embeddings) for model-size images.

    With ``basis=None`` the caller fits one on the returned embeddings (the baseline) and
    adds the component columns itself with :func:`add_components`.
    """
    columns = array_features(arrays, sizes)
    probabilities, embeddings = featurizer.run(arrays)
    for index, name in enumerate(featurizer.classes):
        columns[f"{PROBABILITY_PREFIX}{name}"] = probabilities[:, index]
    columns[CONFIDENCE_FEATURE] = probabilities.max(axis=1) if len(probabilities) else np.zeros(0)
    predicted = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, dtype=int)
    if basis is not None:
        add_components(columns, basis, embeddings)
    return columns, predicted, embeddings


def add_components(columns: dict[str, np.ndarray], basis: Basis, embeddings: np.ndarray) -> None:
    """Add the ``embedding_pcN`` columns (embeddings projected on the basis)."""
    k = basis.components.shape[0]
    projected = basis.project(embeddings) if len(embeddings) else np.zeros((0, k))
    for i in range(k):
        columns[f"{COMPONENT_PREFIX}{i + 1}"] = projected[:, i]
