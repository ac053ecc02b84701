"""The monitored feature table: image statistics plus what the model makes of each image.

Both the baseline step (on the validation split) and the monitoring job (on captured
requests) build their rows with :func:`feature_table`, so the two sides compare like with like:
image statistics on the model's input, every class probability, the top-1 confidence, and a
few principal components of the penultimate-layer embedding. Softmax outputs are the
strongest shift detector in Rabanser et al. ("Failing Loudly", 2019); the embedding catches
input shift that leaves the predicted labels alone.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import contract
from .archive import model_files_dir
from .errors import UserError
from .features import FEATURE_NAMES, array_features
from .modelforward import DEFAULT_OUTPUT, Forward, OnnxForward, TorchForward

CONFIDENCE_FEATURE = "confidence"
PREDICTION_FEATURE = "prediction"
PROBABILITY_PREFIX = "prob_"
COMPONENT_PREFIX = "embedding_pc"
DEFAULT_COMPONENTS = 5
# The forward's batch: larger batches were no faster with ONNX Runtime on 2 cores (cache-bound).
BATCH = 256
AUTO, ONNX, TORCH = "auto", "onnx", "torch"
BACKENDS = (AUTO, ONNX, TORCH)


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


Batch = tuple[np.ndarray, Sequence[tuple[int, int]]]


class Featurizer:
    """Runs the model once per batch, keeping the softmax and the head's input (embedding).

    The backend (:class:`OnnxForward` on the artifact's ``model.onnx``, else
    :class:`TorchForward` on ``model.pt``) returns float32 logits and embeddings; the softmax
    and everything after it are computed here, the same way for both.
    """

    def __init__(self, forward: Forward, meta: dict[str, Any]) -> None:
        self.forward = forward
        self.backend = forward.name
        self.classes = [str(c) for c in meta["classes"]]
        self.image_size = int(meta["image_size"])

    def run(self, arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities N × C, embeddings N × D) for uint8 N×H×W×3 model-size images."""
        probabilities, embeddings = [], []
        for start in range(0, len(arrays), BATCH):
            chunk = np.ascontiguousarray(arrays[start : start + BATCH].transpose(0, 3, 1, 2))
            inputs = chunk.astype(np.float32)
            inputs /= np.float32(255)
            logits, embedding = self.forward.run(inputs)
            probabilities.append(softmax(logits))
            embeddings.append(embedding.reshape(len(chunk), -1).astype(np.float64))
        if not probabilities:
            return np.zeros((0, len(self.classes))), np.zeros((0, 0))
        return np.concatenate(probabilities), np.concatenate(embeddings)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32 (as the model would), returned as float64."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float64)


def load_featurizer(model_dir: Path, backend: str = AUTO) -> Featurizer:
    """The model of a training artifact (``model.tar.gz`` or its files), ready to featurize.

    ``auto`` runs ``model.onnx`` with ONNX Runtime when the artifact has one (artifacts trained
    before the ONNX export have only ``model.pt``: PyTorch then), ``onnx``/``torch`` force one.
    """
    if backend not in BACKENDS:
        raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    with tempfile.TemporaryDirectory(prefix="model-") as scratch:
        files = model_files_dir(model_dir, Path(scratch))
        meta = json.loads((files / contract.MODEL_META_FILE).read_text())
        has_onnx = (files / contract.MODEL_ONNX_FILE).is_file()
        if backend == ONNX and not has_onnx:
            raise UserError(
                f"{model_dir} has no {contract.MODEL_ONNX_FILE}; use --backend auto or retrain"
            )
        forward: Forward
        if backend != TORCH and has_onnx:
            output = str((meta.get("onnx") or {}).get("output") or DEFAULT_OUTPUT)
            forward = OnnxForward(files / contract.MODEL_ONNX_FILE, output, contract.num_cpus())
        else:
            forward = TorchForward(files, contract.num_cpus())
    return Featurizer(forward, meta)


def numeric_feature_names(classes: Sequence[str], components: int) -> list[str]:
    """Every numerical feature of the table, in the order statistics.json lists them."""
    return [
        *FEATURE_NAMES,
        *(f"{PROBABILITY_PREFIX}{c}" for c in classes),
        CONFIDENCE_FEATURE,
        *(f"{COMPONENT_PREFIX}{i + 1}" for i in range(components)),
    ]


def feature_table(
    featurizer: Featurizer, batches: Iterable[Batch], basis: Basis | None
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(numeric columns, predicted class indices, embeddings) for batches of model-size images.

    Each batch is (uint8 N×H×W×3 arrays, their sizes as received); the batches may be produced
    while the previous one runs through the model (the monitor decodes in a thread). With
    ``basis=None`` the caller fits one on the returned embeddings (the baseline) and adds the
    component columns itself with :func:`add_components`.
    """
    parts: list[dict[str, np.ndarray]] = []
    probabilities, embeddings = [], []
    for arrays, sizes in batches:
        if len(arrays):
            parts.append(array_features(arrays, sizes))
            chunk_probabilities, chunk_embeddings = featurizer.run(arrays)
            probabilities.append(chunk_probabilities)
            embeddings.append(chunk_embeddings)
    columns = {
        name: np.concatenate([part[name] for part in parts]) if parts else np.zeros(0)
        for name in FEATURE_NAMES
    }
    probs = np.concatenate(probabilities) if parts else np.zeros((0, len(featurizer.classes)))
    embedded = np.concatenate(embeddings) if parts else np.zeros((0, 0))
    for index, name in enumerate(featurizer.classes):
        columns[f"{PROBABILITY_PREFIX}{name}"] = probs[:, index]
    columns[CONFIDENCE_FEATURE] = probs.max(axis=1) if len(probs) else np.zeros(0)
    predicted = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=int)
    if basis is not None:
        add_components(columns, basis, embedded)
    return columns, predicted, embedded


def array_batches(arrays: np.ndarray, size: int = BATCH) -> Iterable[Batch]:
    """Batches of an in-memory uint8 N×H×W×3 split (all images at their stored size)."""
    sizes = [(arrays.shape[2], arrays.shape[1])] * min(size, len(arrays))
    for start in range(0, len(arrays), size):
        chunk = arrays[start : start + size]
        yield chunk, sizes[: len(chunk)]


def add_components(columns: dict[str, np.ndarray], basis: Basis, embeddings: np.ndarray) -> None:
    """Add the ``embedding_pcN`` columns (embeddings projected on the basis)."""
    k = basis.components.shape[0]
    projected = basis.project(embeddings) if len(embeddings) else np.zeros((0, k))
    for i in range(k):
        columns[f"{COMPONENT_PREFIX}{i + 1}"] = projected[:, i]
