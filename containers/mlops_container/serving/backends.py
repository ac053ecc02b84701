"""The model behind the server: ONNX Runtime on ``model.onnx``, or PyTorch as the fallback.

The artifact is the training job's ``/opt/ml/model`` (extracted, or ``model.tar.gz``). Both
backends take the model's input (float32 NCHW in 0..1; normalization is inside the model) and
return logits. The PyTorch backend imports torch lazily: it exists only in the runtime image and
serves artifacts trained before ``model.onnx`` was exported.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import numpy as np

from .. import contract
from ..archive import model_files_dir
from ..errors import UserError


class Backend(Protocol):
    """Runs a batch; ``run`` is called from one thread at a time."""

    name: str

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, classes) for a float32 NCHW batch."""
        ...


class OnnxBackend:
    """An ONNX Runtime CPU session with a fixed thread budget and no spinning threads."""

    name = "onnxruntime"

    def __init__(self, model: Path | bytes, threads: int) -> None:
        ort = contract.import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads would otherwise spin and take the core the event loop decodes on.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]  # type: ignore[no-any-return]


class TorchBackend:
    """The PyTorch model rebuilt from ``model.pt`` (runtime image only)."""

    name = "torch"

    def __init__(self, files: Path, threads: int) -> None:
        import torch

        from ..models import load_model

        torch.set_num_threads(threads)
        self.torch = torch
        self.model, _ = load_model(files)

    def run(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.model(self.torch.from_numpy(batch)).numpy()  # type: ignore[no-any-return]


@dataclass
class LoadedModel:
    """A backend plus what the server needs from ``model.json``."""

    backend: Backend
    classes: list[str]
    image_size: int
    meta: dict[str, Any] = field(repr=False)
    load_seconds: float = 0.0


def choose_backend(files: Path, wanted: str) -> str:
    """``onnx`` when the artifact has model.onnx (or it is asked for), else ``torch``."""
    has_onnx = (files / contract.MODEL_ONNX_FILE).is_file()
    if wanted == "onnx" or (wanted == "auto" and has_onnx):
        if not has_onnx:
            raise UserError(f"{files} has no {contract.MODEL_ONNX_FILE}; retrain the model")
        return "onnx"
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UserError(
            f"{files} has no {contract.MODEL_ONNX_FILE} (the model was trained before ONNX "
            "export) and this image has no PyTorch: serve it with the runtime image, or retrain"
        ) from None
    return "torch"


def _check_readable(model_dir: Path) -> None:
    """The serving image runs as an unprivileged user: say so when the model is not readable."""
    try:
        names = [path.name for path in model_dir.iterdir()]
        for name in names:
            if (model_dir / name).is_file():
                (model_dir / name).open("rb").close()
    except PermissionError as error:
        raise UserError(
            f"cannot read {model_dir} as user {os.getuid()} ({error.strerror}): make the model "
            "folder readable to all (chmod -R a+rX), or run the container with --user"
        ) from error
    except FileNotFoundError:
        pass  # model_files_dir names what is missing


def onnx_from_archive(archive: Path, scratch: Path) -> tuple[bytes, Path] | None:
    """(model.json, model.onnx copied to ``scratch``) from ``model.tar.gz``, or None without ONNX.

    Streams the archive and stops once both are found, so ``model.pt`` is neither decompressed
    (when it comes last) nor written: that keeps the start to ``/ping`` short. ONNX Runtime
    loads from a file path with ~40 MB less resident memory than from bytes.
    """
    meta, onnx = b"", scratch / contract.MODEL_ONNX_FILE
    try:
        with tarfile.open(archive, "r|gz") as tar:
            for member in tar:
                parts = [p for p in PurePosixPath(member.name).parts if p != "."]
                if not (member.isfile() and len(parts) == 1):
                    continue
                handle = tar.extractfile(member)
                if handle is not None and parts[0] == contract.MODEL_META_FILE:
                    meta = handle.read()
                elif handle is not None and parts[0] == contract.MODEL_ONNX_FILE:
                    with onnx.open("wb") as target:
                        shutil.copyfileobj(handle, target, 1024 * 1024)
                if meta and onnx.is_file():
                    return meta, onnx
    except (tarfile.TarError, OSError, EOFError) as error:
        raise UserError(f"{archive} is not a readable tar.gz: {error}") from error
    return None


def release_free_memory() -> None:
    """Hand memory freed while loading back to the OS (glibc keeps it otherwise: ~90 MB for
    resnet18, measured)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _meta_fields(meta: dict[str, Any], where: Path) -> tuple[list[str], int]:
    try:
        return [str(name) for name in meta["classes"]], int(meta["image_size"])
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{where} lacks classes/image_size ({error})") from error


def load(model_dir: Path, wanted: str = "auto", threads: int = 2) -> LoadedModel:
    """Load the artifact in ``model_dir`` and warm the backend up with one forward."""
    started = time.perf_counter()
    _check_readable(model_dir)
    archive = model_dir / contract.MODEL_ARCHIVE_FILE
    backend: Backend
    with tempfile.TemporaryDirectory(prefix="model-") as scratch:
        packed = None
        if wanted != "torch" and not (model_dir / contract.MODEL_META_FILE).is_file():
            packed = onnx_from_archive(archive, Path(scratch)) if archive.is_file() else None
        if packed is not None:
            meta = json.loads(packed[0])
            classes, image_size = _meta_fields(meta, archive)
            backend = OnnxBackend(packed[1], threads)
        else:
            files = model_files_dir(model_dir, Path(scratch))
            meta = json.loads((files / contract.MODEL_META_FILE).read_text())
            classes, image_size = _meta_fields(meta, files / contract.MODEL_META_FILE)
            if choose_backend(files, wanted) == "onnx":
                backend = OnnxBackend(files / contract.MODEL_ONNX_FILE, threads)
            else:
                backend = TorchBackend(files, threads)
    logits = backend.run(np.zeros((1, 3, image_size, image_size), dtype=np.float32))
    if logits.shape != (1, len(classes)):
        raise UserError(
            f"the model answers shape {logits.shape} for one image, but model.json lists "
            f"{len(classes)} classes"
        )
    release_free_memory()
    return LoadedModel(backend, classes, image_size, meta, time.perf_counter() - started)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable)."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]
