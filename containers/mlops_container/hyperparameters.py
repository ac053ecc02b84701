"""Training hyperparameters: defaults, parsing of SageMaker's all-string values, validation.

SageMaker writes every value of ``hyperparameters.json`` as a JSON string ("10", "0.001",
"\\"resnet18\\""); each is decoded once, then checked against its type and allowed values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import UserError
from .models import BACKBONES

OPTIMIZERS = ("adamw", "sgd")
WEIGHTS = ("none", "imagenet", "channel")
AUGMENTS = ("none", "light", "flip")
# Keys SageMaker or the tuner add on their own; they are not ours to validate.
IGNORED_PREFIXES = ("sagemaker_", "_")


@dataclass(frozen=True)
class Hyperparameters:
    """The training job's knobs (see ML.md for what each does)."""

    backbone: str = "resnet18"
    epochs: int = 10
    learning_rate: float = 0.001
    batch_size: int = 64
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    weights: str = "none"
    freeze_epochs: int = 0
    seed: int = 42
    num_workers: int = 0
    augment: str = "light"


CHOICES: dict[str, tuple[str, ...]] = {
    "backbone": BACKBONES,
    "optimizer": OPTIMIZERS,
    "weights": WEIGHTS,
    "augment": AUGMENTS,
}
RANGES: dict[str, tuple[float, float]] = {
    "epochs": (1, 10_000),
    "learning_rate": (1e-8, 10.0),
    "batch_size": (1, 65_536),
    "weight_decay": (0.0, 1.0),
    "freeze_epochs": (0, 10_000),
    "seed": (0, 2**32 - 1),
    "num_workers": (0, 64),
}


def decode(value: Any) -> Any:
    """Undo SageMaker's stringification: '10' -> 10, '"a"' -> 'a', 'abc' stays 'abc'."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _coerce(name: str, kind: type, value: Any) -> Any:
    allowed = CHOICES.get(name)
    if kind is str:
        text = str(value).strip().lower()
        if allowed and text not in allowed:
            raise UserError(
                f"hyperparameter {name}={value!r} is not allowed; "
                f"allowed values: {', '.join(allowed)}"
            )
        return text
    low, high = RANGES[name]
    kind_name = "an integer" if kind is int else "a number"
    if isinstance(value, bool):  # JSON true/false would otherwise pass as 1/0
        raise UserError(f"hyperparameter {name}={value!r} must be {kind_name} in [{low}, {high}]")
    try:
        number = float(value)
        if kind is int:
            if number != int(number):
                raise ValueError
            number = int(number)
    except (TypeError, ValueError, OverflowError) as error:
        raise UserError(
            f"hyperparameter {name}={value!r} must be {kind_name} in [{low}, {high}]"
        ) from error
    if not low <= number <= high:
        raise UserError(
            f"hyperparameter {name}={value!r} is out of range; allowed values: [{low}, {high}]"
        )
    return number


def parse(raw: dict[str, Any]) -> Hyperparameters:
    """Validate a hyperparameters mapping into :class:`Hyperparameters`."""
    known = {f.name: f for f in fields(Hyperparameters)}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name.startswith(IGNORED_PREFIXES):
            continue
        if name not in known:
            raise UserError(f"unknown hyperparameter {name!r}; allowed: {', '.join(known)}")
        kind = {"int": int, "float": float, "str": str}[str(known[name].type)]
        values[name] = _coerce(name, kind, decode(value))
    result = Hyperparameters(**values)
    if result.freeze_epochs > result.epochs:
        raise UserError(
            f"hyperparameter freeze_epochs={result.freeze_epochs} must be <= epochs={result.epochs}"
        )
    return result


def read(path: Path) -> Hyperparameters:
    """Read ``hyperparameters.json`` (missing file = all defaults)."""
    if not path.is_file():
        return Hyperparameters()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON: {error.msg}") from error
    if not isinstance(raw, dict):
        raise UserError(f"{path} must hold a JSON object")
    return parse(raw)
