"""``model.onnx`` beside ``model.pt``: exported at training time, checked before it is kept.

The serving image runs the model with ONNX Runtime (no torch), so training exports the trained
model with a dynamic batch axis and checks it on real validation images: the largest absolute
difference between the PyTorch and ONNX Runtime logits is recorded in ``model.json``. A failed
export or a difference over the tolerance fails the training job (the reason goes to
``output/failure``), so a registered model always serves what was trained.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import contract

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
CHECK_IMAGES = 64
# float32 kernels differ in summation order; the gap is ~1e-6 here. Relative to the logits' scale.
TOLERANCE = 1e-3


class ExportError(Exception):
    """The model could not be exported to ONNX, or the export computes something else."""


def export(model: nn.Module, path: Path, image_size: int) -> None:
    """Write ``model`` (eval mode) as ONNX with a dynamic batch axis.

    The TorchScript-based exporter (``dynamo=False``) needs only the ``onnx`` package; the
    dynamo exporter would also need ``onnxscript``.
    """
    model.eval()
    dummy = torch.zeros(1, 3, image_size, image_size)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation notice, once per job
            torch.onnx.export(
                model,
                (dummy,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as error:
        raise ExportError(f"exporting the model to ONNX failed: {error}") from error


def compare(model: nn.Module, path: Path, images: torch.Tensor) -> tuple[float, float]:
    """Largest |torch - onnxruntime| logit difference on ``images`` (uint8 NCHW), and the
    largest |torch logit| (the scale the difference is judged against)."""
    ort = contract.import_onnxruntime()
    inputs = images.float().div(255)
    with torch.inference_mode():
        expected = model(inputs).numpy()
    options = ort.SessionOptions()
    options.intra_op_num_threads = contract.num_cpus()
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        actual = session.run(None, {INPUT_NAME: inputs.numpy()})[0]
    except Exception as error:
        raise ExportError(f"ONNX Runtime cannot run the exported model: {error}") from error
    if actual.shape != expected.shape:
        raise ExportError(f"ONNX Runtime gives shape {actual.shape}, torch {expected.shape}")
    return float(np.abs(actual - expected).max()), float(np.abs(expected).max())


def export_checked(
    model: nn.Module, model_dir: Path, validation_images: torch.Tensor
) -> dict[str, Any]:
    """Export ``model.onnx`` into ``model_dir``, check it, and return its model.json entry."""
    ort = contract.import_onnxruntime()
    started = time.perf_counter()
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / contract.MODEL_ONNX_FILE
    image_size = int(validation_images.shape[-1])
    export(model, path, image_size)
    sample = validation_images[:CHECK_IMAGES]
    difference, scale = compare(model, path, sample)
    tolerance = TOLERANCE * max(1.0, scale)
    if not difference <= tolerance:  # also catches NaN
        path.unlink(missing_ok=True)
        raise ExportError(
            f"the ONNX model differs from PyTorch by {difference:.3g} on {len(sample)} validation "
            f"images (tolerance {tolerance:.3g}); the export is not kept"
        )
    return {
        "file": contract.MODEL_ONNX_FILE,
        "opset": OPSET,
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "dynamic_axes": ["batch"],
        "checked_images": len(sample),
        "max_abs_diff": difference,
        "tolerance": tolerance,
        "onnxruntime": ort.__version__,
        "export_seconds": round(time.perf_counter() - started, 2),
    }
