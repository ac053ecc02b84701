"""The model's forward for the monitored features: logits and the head's input (embedding).

:class:`OnnxForward` runs the artifact's ``model.onnx`` with ONNX Runtime, with the input of
the classification head (the last Gemm, whose output is the logits) added as a second graph
output, so one run gives both. It needs no torch: the monitoring job starts faster, and on
these shapes ONNX Runtime is faster than eager PyTorch. :class:`TorchForward` rebuilds the
model from ``model.pt`` for artifacts trained before the ONNX export (torch imported lazily).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import contract
from .errors import UserError

DEFAULT_OUTPUT = "logits"


class Forward(Protocol):
    """Runs one float32 NCHW batch (0..1; normalization is inside the model)."""

    name: str

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits N × C, embeddings N × D), float32."""
        ...


def head_input(graph: Any, output: str) -> str:
    """The name of the tensor the head consumes: the input of the Gemm (or MatMul + Add) that
    produces ``output``."""
    producers = {name: node for node in graph.node for name in node.output}
    initializers = {tensor.name for tensor in graph.initializer}
    node = producers.get(output)
    if node is not None and node.op_type == "Add":
        operands = [name for name in node.input if name not in initializers]
        node = producers.get(operands[0]) if len(operands) == 1 else None
    if node is None or node.op_type not in ("Gemm", "MatMul"):
        raise UserError(
            f"model.onnx's {output!r} does not come from a final Gemm/MatMul (the head), so "
            "the embedding cannot be read from it; use --backend torch"
        )
    return str(node.input[0])


class OnnxForward:
    """ONNX Runtime on ``model.onnx`` with the head's input as an extra output."""

    name = "onnxruntime"

    def __init__(self, path: Path, output: str, threads: int) -> None:
        import onnx

        ort = contract.import_onnxruntime()
        model = onnx.load(str(path))
        embedding = head_input(model.graph, output)
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(embedding, onnx.TensorProto.FLOAT, None)
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The decoding thread runs between batches: idle pool threads must not spin on its core.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.outputs = [output, embedding]

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, embeddings = self.session.run(self.outputs, {self.input_name: batch})
        return logits, embeddings


class TorchForward:
    """The PyTorch model rebuilt from ``model.pt``, the embedding taken by a forward hook."""

    name = "torch"

    def __init__(self, files: Path, threads: int) -> None:
        import torch

        from .models import head_prefix, load_model

        torch.set_num_threads(threads)
        self.torch = torch
        self.model, meta = load_model(files)
        backbone = getattr(self.model, "backbone", self.model)
        head = backbone.get_submodule(head_prefix(str(meta["architecture"])).rstrip("."))
        self._captured: list[Any] = []
        head.register_forward_pre_hook(lambda _module, args: self._captured.append(args[0]))

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self.torch.inference_mode():
            self._captured.clear()
            logits = self.model(self.torch.from_numpy(batch))
            return logits.numpy(), self._captured[-1].flatten(1).numpy()
