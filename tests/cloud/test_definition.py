"""The cloud definition runs every job and model in the ECR images when repositories are set."""

from __future__ import annotations

import json
from typing import Any

from local_mlops import __version__, targets
from local_mlops.config import load_settings
from local_mlops.pipeline import graph

ECR = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/classifier"
SERVING_ECR = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/classifier-serving"


def _images(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [
            v
            for k, v in node.items()
            if k in ("ImageUri", "TrainingImage", "Image") and isinstance(v, str)
        ]
        return found + [i for v in node.values() for i in _images(v)]
    if isinstance(node, list):
        return [i for item in node for i in _images(item)]
    return []


def test_cloud_definition_uses_the_ecr_image() -> None:
    settings = load_settings(
        {"target": "cloud", "image_repository": ECR, "serving_image_repository": SERVING_ECR}
    )
    pipeline = graph.build_pipeline(settings, targets.definition_session(settings))
    images = _images(json.loads(pipeline.definition()))
    # validate, preprocess, evaluate, train, and the model in register + create
    assert len(images) >= 6
    assert set(images) == {f"{ECR}:{__version__}", f"{SERVING_ECR}:{__version__}"}


def _definition(target: str, **kwargs: Any) -> dict[str, Any]:
    settings = load_settings({"target": target}, environ={})
    pipeline = graph.build_pipeline(settings, targets.definition_session(settings), **kwargs)
    return json.loads(pipeline.definition())  # type: ignore[no-any-return]


def _without_session_values(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition with the values only the session sets (instance types) made equal."""
    for parameter in definition["Parameters"]:
        if parameter["Name"] in ("ProcessingInstanceType", "TrainingInstanceType"):
            parameter["DefaultValue"] = "<instance type>"
    return definition


def test_two_instance_cloud_definition_matches_the_local_one() -> None:
    for tune in (False, True):
        cloud = _definition("cloud", instance_count=2, tune=tune)
        local = _definition("local", instance_count=2, tune=tune)
        assert _without_session_values(cloud) == _without_session_values(local)
        count = next(p for p in cloud["Parameters"] if p["Name"] == "TrainingInstanceCount")
        assert count == {"Name": "TrainingInstanceCount", "Type": "Integer", "DefaultValue": 2}
        fit = cloud["Steps"][2]["Arguments"]
        resources = (
            fit["TrainingJobDefinition"]["HyperParameterTuningResourceConfig"]
            if tune
            else fit["ResourceConfig"]
        )
        assert resources["InstanceCount"] == {"Get": "Parameters.TrainingInstanceCount"}
    # The default stays one instance.
    one = _definition("cloud")
    assert {"Name": "TrainingInstanceCount", "Type": "Integer", "DefaultValue": 1} in one[
        "Parameters"
    ]
