"""The pipeline definition and the runtime image agree on every value they share.

Each side writes the values once (``local_mlops/pipeline/contract.py`` and
``containers/mlops_container/contract.py``); the two packages never import each other, so this
test reads both and compares them, and checks the image's own output against the graph's readers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from local_mlops.config import load_settings
from local_mlops.pipeline import contract as pipeline
from local_mlops.pipeline import graph
from local_mlops.targets import definition_session
from mlops_container import contract as image
from mlops_container import train
from mlops_container.evaluate import compute_metrics

ROOT = Path(__file__).resolve().parents[2]
SHARED = [
    "METRIC_NAMES",
    "METRIC_DEFINITIONS",
    "OBJECTIVE_METRIC",
    "METRICS_SECTION",
    "ACCURACY_PATH",
    "EVALUATION_FILE",
    "CONTENT_TYPES",
    "RESPONSE_TYPES",
    "TRANSFORM_CONTENT_TYPE",
    "TRANSFORM_PACKED_CONTENT_TYPE",
    "TOP_K_ENV",
    "RECORD_ERRORS_ENV",
    "UNIX_SOCKET_ENV",
    "TRAIN_CHANNEL",
    "VALIDATION_CHANNEL",
    "PRETRAINED_CHANNEL",
    "TEST_SPLIT",
    "META_OUTPUT",
    "BASELINE_OUTPUT",
    "PREPROCESS_OUTPUTS",
    "MODEL_WEIGHTS_FILE",
    "MODEL_META_FILE",
    "MODEL_ARCHIVE_FILE",
    "DATA_FILE",
    "BASELINE_STEP_OUTPUT",
    "STATISTICS_FILE",
    "CONSTRAINTS_FILE",
    "MODEL_QUALITY_CONSTRAINTS_FILE",
    "VIOLATIONS_FILE",
    "SUMMARY_FILE",
]
PROCESSING_PATHS = [
    "PROCESSING_INPUT_DATA",
    "PROCESSING_OUTPUT",
    "PROCESSING_REPORT",
    "PROCESSING_MODEL",
    "PROCESSING_TEST",
    "PROCESSING_EVALUATION",
    "PROCESSING_VALIDATION",
    "PROCESSING_BASELINE",
    "PROCESSING_CAPTURE",
    "PROCESSING_GROUND_TRUTH",
    "PROCESSING_MONITOR_OUTPUT",
]


@pytest.mark.parametrize("name", SHARED)
def test_both_sides_write_the_same_value(name: str) -> None:
    assert getattr(pipeline, name) == getattr(image, name)


@pytest.mark.parametrize("name", PROCESSING_PATHS)
def test_processing_folders_are_where_the_image_looks(name: str) -> None:
    base = f"{image.DEFAULT_BASE_DIR}/{image.PROCESSING_PATH}"
    assert base == pipeline.PROCESSING_ROOT
    assert getattr(pipeline, name) == f"{base}/{getattr(image, name)}"


def test_the_metric_regexes_read_the_line_the_trainer_prints() -> None:
    values = {name: 0.5 + i / 10 for i, name in enumerate(image.METRIC_NAMES)}
    line = train.format_metrics(2, 6, values)
    read = {
        d["Name"]: float(re.search(d["Regex"], line).group(1))  # type: ignore[union-attr]
        for d in pipeline.METRIC_DEFINITIONS
    }
    assert read == pytest.approx(values, abs=0.05)


def test_the_accuracy_gate_reads_the_report_the_evaluator_writes() -> None:
    import numpy as np

    report = json.loads(
        json.dumps(compute_metrics(np.array([0, 1, 1]), np.array([0, 1, 0]), ["a", "b"]))
    )
    node = report
    for part in pipeline.ACCURACY_PATH.split("."):
        node = node[part]
    assert node == pytest.approx(2 / 3)


def test_the_definition_uses_the_contract() -> None:
    settings = load_settings({"target": "cloud"}, config_file=ROOT / "tests/data/empty.toml")
    definition = json.loads(
        graph.build_pipeline(settings, definition_session(settings)).definition()
    )
    text = json.dumps(definition)
    steps = {s["Name"]: s for s in definition["Steps"]}
    outputs = steps[graph.PREPROCESS]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert [o["OutputName"] for o in outputs] == list(image.PREPROCESS_OUTPUTS)
    assert {o["S3Output"]["LocalPath"] for o in outputs} == {
        f"{image.DEFAULT_BASE_DIR}/processing/{image.PROCESSING_OUTPUT}/{name}"
        for name in image.PREPROCESS_OUTPUTS
    }
    channels = steps[graph.TRAIN]["Arguments"]["InputDataConfig"]
    assert [c["ChannelName"] for c in channels] == [image.TRAIN_CHANNEL, image.VALIDATION_CHANNEL]
    assert json.dumps(image.METRIC_DEFINITIONS[0]["Regex"])[1:-1] in text
    assert image.ACCURACY_PATH in text and image.EVALUATION_FILE in text
