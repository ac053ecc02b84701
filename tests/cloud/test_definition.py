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
