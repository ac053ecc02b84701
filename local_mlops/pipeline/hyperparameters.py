"""The training job's allowed hyperparameters, checked before a run starts anything.

The runtime image validates the same names with the same types, ranges and choices
(``containers/mlops_container/hyperparameters.py``; the two code roots never import each other,
``tests/unit/test_hyperparameters.py`` checks that they agree). Checking here means a bad
``--epochs`` fails at once with the flag named, instead of inside the Train container after the
data steps ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError


@dataclass(frozen=True)
class Allowed:
    """One hyperparameter's type and its allowed range (numbers) or choices (strings)."""

    kind: type
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind is str:
            return "one of " + ", ".join(self.choices)
        noun = "an integer" if self.kind is int else "a number"
        return f"{noun} from {_number(self.low)} to {_number(self.high)}"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed, or None when it is."""
        if self.kind is str:
            return None if str(value).strip().lower() in self.choices else "is not allowed"
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return "is not a number"
        try:
            number = float(value)
        except ValueError:
            return "is not a number"
        if self.kind is int and number != int(number):
            return "is not an integer"
        return None if self.low <= number <= self.high else "is out of range"


ALLOWED: dict[str, Allowed] = {
    "backbone": Allowed(str, choices=("resnet18", "mobilenet_v3_small")),
    "epochs": Allowed(int, 1, 10_000),
    "learning_rate": Allowed(float, 1e-8, 10.0),
    "batch_size": Allowed(int, 1, 65_536),
    "weight_decay": Allowed(float, 0.0, 1.0),
    "optimizer": Allowed(str, choices=("adamw", "sgd")),
    "weights": Allowed(str, choices=("none", "imagenet", "channel")),
    "freeze_epochs": Allowed(int, 0, 10_000),
    "seed": Allowed(int, 0, 2**32 - 1),
    "num_workers": Allowed(int, 0, 64),
    "augment": Allowed(str, choices=("none", "light", "flip")),
}
THRESHOLD = Allowed(float, 0.0, 1.0)
# Training hosts per job (locally: containers on this machine, sharing its cores).
INSTANCE_COUNT = Allowed(int, 1, 8)

# Settings that become hyperparameters or gate values, with the `run` flag that sets each.
FLAGS = {
    "epochs": "--epochs",
    "backbone": "--backbone",
    "learning_rate": "--learning-rate",
    "accuracy_threshold": "--threshold",
}
# Pipeline parameters (RunOptions.parameters) and the setting each one overrides.
PARAMETERS = {
    "Epochs": "epochs",
    "Backbone": "backbone",
    "LearningRate": "learning_rate",
    "BatchSize": "batch_size",
    "AccuracyThreshold": "accuracy_threshold",
    "TrainingInstanceCount": "instance_count",
}
# Pipeline parameters that are no setting: the `run` flag that sets each.
PARAMETER_FLAGS = {"instance_count": "--instance-count"}


def _number(value: float) -> str:
    return f"{value:g}"


def _rule(name: str) -> Allowed:
    if name == "instance_count":
        return INSTANCE_COUNT
    return THRESHOLD if name == "accuracy_threshold" else ALLOWED[name]


def _refuse(name: str, value: Any, origin: str, problem: str) -> LocalMlopsError:
    rule = _rule(name)
    flag = FLAGS.get(name) or PARAMETER_FLAGS.get(name, name)
    return LocalMlopsError(
        f"{flag} {value} ({origin}) {problem}: it must be {rule.describe()}",
        f"pass {flag} with {rule.describe()}",
    )


def check_run(settings: Settings, parameters: Mapping[str, Any] | None = None) -> None:
    """Refuse a run whose hyperparameters or accuracy threshold the pipeline would reject."""
    for name in FLAGS:
        value = getattr(settings, name)
        problem = _rule(name).problem(value)
        if problem:
            source = settings.source_of(name)
            origin = "the flag" if source == "flag" else f"from {source}"
            raise _refuse(name, value, origin, problem)
    for parameter, value in (parameters or {}).items():
        setting = PARAMETERS.get(parameter)
        if setting is None:
            continue
        problem = _rule(setting).problem(value)
        if problem:
            raise _refuse(setting, value, f"pipeline parameter {parameter}", problem)


def check_instance_count(value: Any) -> None:
    """Refuse a ``--instance-count`` outside 1..8 before anything starts."""
    problem = INSTANCE_COUNT.problem(value)
    if problem:
        raise _refuse("instance_count", value, "the flag", problem)
