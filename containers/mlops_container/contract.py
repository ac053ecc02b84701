"""The SageMaker container contract: every path and environment variable the image uses.

All paths derive from one base directory (``SAGEMAKER_BASE_DIR``, default ``/opt/ml``)
so the same code runs inside the image and on a host in tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Environment variables read by the container code.
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
NUM_CPUS_ENV = "SM_NUM_CPUS"
CHECKPOINT_DIR_ENV = "MLOPS_CHECKPOINT_DIR"
BIND_PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
MAX_PAYLOAD_ENV = "SAGEMAKER_MAX_PAYLOAD_IN_MB"
TORCH_HOME_ENV = "TORCH_HOME"
RUN_AS_ENV = "MLOPS_RUN_AS"  # set by the image: the user its entry points drop root to
# Multi-instance training (distributed.py): where the leader listens, how long to wait.
DIST_PORT_ENV = "MLOPS_DIST_PORT"
DIST_MASTER_ADDR_ENV = "MLOPS_DIST_MASTER_ADDR"  # default: the first host's name
DIST_TIMEOUT_ENV = "MLOPS_DIST_TIMEOUT_SECONDS"  # every collective
RENDEZVOUS_TIMEOUT_ENV = "MLOPS_RENDEZVOUS_TIMEOUT_SECONDS"  # all hosts joining
# Serving (SageMaker's names first, then the server's own knobs).
CUSTOM_ATTRIBUTES_HEADER = "x-amzn-sagemaker-custom-attributes"
MAX_BATCH_ENV = "MLOPS_MAX_BATCH_SIZE"
READ_TIMEOUT_ENV = "MLOPS_READ_TIMEOUT_SECONDS"
INTRA_OP_THREADS_ENV = "MLOPS_INTRA_OP_THREADS"
SERVING_BACKEND_ENV = "MLOPS_SERVING_BACKEND"
ACCESS_LOG_ENV = "MLOPS_ACCESS_LOG"
# Also listen on this Unix socket (a folder the host mounts): local endpoints' router reaches the
# server through it instead of a published port, which Docker relays through docker-proxy.
UNIX_SOCKET_ENV = "MLOPS_UNIX_SOCKET"
# Batch transform: the default length of `top_k`, and unreadable records answered as entries.
TOP_K_ENV = "MLOPS_TOP_K"
RECORD_ERRORS_ENV = "MLOPS_RECORD_ERRORS"
TRANSFORM_CONTENT_TYPE = "application/x-image"  # what a transform job sends its images as
TRANSFORM_PACKED_CONTENT_TYPE = "application/jsonlines"  # {"name", "b64"} lines, one an image
# ONNX Runtime (1.32) collects telemetry and can upload it unless this is set; the images set it.
ORT_TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"

DEFAULT_BASE_DIR = "/opt/ml"
# Commands the CLI starts with `docker run` (importer, `data validate`) get their folders here.
COMMAND_MOUNT_DIR = "/data"
DEFAULT_PORT = 8080
DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_MAX_BATCH = 32
DEFAULT_READ_TIMEOUT_SECONDS = 10.0
DEFAULT_DIST_PORT = 29500
DEFAULT_DIST_TIMEOUT_SECONDS = 60.0
DEFAULT_RENDEZVOUS_TIMEOUT_SECONDS = 120.0

# Paths relative to the base directory.
HYPERPARAMETERS_PATH = "input/config/hyperparameters.json"
RESOURCE_CONFIG_PATH = "input/config/resourceconfig.json"  # current_host, hosts
INPUT_DATA_PATH = "input/data"
MODEL_PATH = "model"
OUTPUT_PATH = "output"
OUTPUT_DATA_PATH = "output/data"
FAILURE_PATH = "output/failure"  # training jobs: reason of a failure
MESSAGE_PATH = "output/message"  # processing jobs: reason of a failure
CHECKPOINT_PATH = "checkpoints"
PROCESSING_PATH = "processing"

# Training channels.
TRAIN_CHANNEL = "train"
VALIDATION_CHANNEL = "validation"
PRETRAINED_CHANNEL = "pretrained"

# File names shared by the steps.
MANIFEST_FILE = "manifest.jsonl"
CLASSES_FILE = "classes.json"
NORMALIZATION_FILE = "normalization.json"
IMAGES_DIR = "images"
DATA_FILE = "data.npz"
MODEL_WEIGHTS_FILE = "model.pt"
MODEL_META_FILE = "model.json"
MODEL_ONNX_FILE = "model.onnx"
MODEL_ARCHIVE_FILE = "model.tar.gz"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"  # per-epoch metrics, for the dashboard's curves
CHECKPOINT_FILE = "checkpoint.pt"
REPORT_FILE = "report.json"
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
EVALUATION_FILE = "evaluation.json"
CONFUSION_JSON_FILE = "confusion_matrix.json"
CONFUSION_PNG_FILE = "confusion_matrix.png"
# Monitoring: the baseline step's extras beside statistics/constraints, and the monitor's outputs.
BASIS_FILE = "embedding_basis.json"
MODEL_QUALITY_CONSTRAINTS_FILE = "model_quality_constraints.json"
VIOLATIONS_FILE = "constraint_violations.json"
SUMMARY_FILE = "summary.json"

# What the pipeline definition must agree on (local_mlops/pipeline/contract.py holds the other
# side; tests/unit/test_contract.py checks that the two agree).
# One metric line per epoch, ``name=value`` each, read by these regexes.
METRIC_NAMES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "images_per_sec")
METRIC_DEFINITIONS = [{"Name": n, "Regex": f"{n}=([0-9\\.]+)"} for n in METRIC_NAMES]
OBJECTIVE_METRIC = "val_accuracy"
# evaluation.json: SageMaker's model-quality format; the accuracy gate reads ACCURACY_PATH.
METRICS_SECTION = "multiclass_classification_metrics"
ACCURACY_PATH = f"{METRICS_SECTION}.accuracy.value"
# What the model server accepts and answers.
CONTENT_TYPES = (
    "image/png",
    "image/jpeg",
    "application/x-image",
    "application/x-npy",
    "application/json",
    "application/jsonlines",
)
RESPONSE_TYPES = ("application/json", "application/jsonlines")
# Preprocessing writes one folder per output; the splits are the training channels and "test".
TEST_SPLIT = "test"
META_OUTPUT = "meta"  # classes + normalization from the train split
BASELINE_OUTPUT = "baseline"  # the monitoring baseline (statistics, constraints)
PREPROCESS_OUTPUTS = (TRAIN_CHANNEL, VALIDATION_CHANNEL, TEST_SPLIT, META_OUTPUT, BASELINE_OUTPUT)
# Processing folders under <base>/processing, where the pipeline mounts inputs and outputs.
PROCESSING_INPUT_DATA = "input/data"  # validate, preprocess: the dataset's shards
PROCESSING_OUTPUT = "output"  # preprocess: PREPROCESS_OUTPUTS below it
PROCESSING_REPORT = "output/report"  # validate: REPORT_FILE
PROCESSING_MODEL = "model"  # evaluate: the model artifact
PROCESSING_TEST = "test"  # evaluate: the test split
PROCESSING_EVALUATION = "evaluation"  # evaluate: EVALUATION_FILE and the confusion matrix
PROCESSING_VALIDATION = "validation"  # evaluate, baseline: the validation split
PROCESSING_BASELINE = "baseline"  # evaluate, baseline: output; monitor: the drift-check baselines
PROCESSING_CAPTURE = "input/capture"  # monitor: captured requests
PROCESSING_GROUND_TRUTH = "input/groundtruth"  # monitor: ground truth records
PROCESSING_MONITOR_OUTPUT = "output"  # monitor: statistics, violations, summary
BASELINE_STEP_OUTPUT = "baseline"  # the Baseline step's processing output


def base_dir() -> Path:
    """The contract's root directory: ``$SAGEMAKER_BASE_DIR`` or ``/opt/ml``."""
    return Path(os.environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR)


def path(relative: str) -> Path:
    """A contract path (one of the ``*_PATH`` constants) under the base directory."""
    return base_dir() / relative


def processing_path(relative: str) -> Path:
    """A path under ``<base>/processing`` (where processing jobs mount inputs and outputs)."""
    return base_dir() / PROCESSING_PATH / relative


def channel_dir(channel: str) -> Path:
    """The local directory of a training channel: ``<base>/input/data/<channel>``."""
    return path(INPUT_DATA_PATH) / channel


def find_file(folder: Path, name: str) -> Path | None:
    """``name`` directly in a channel or processing folder, or anywhere below it (S3 prefixes
    may nest)."""
    if (folder / name).is_file():
        return folder / name
    return next(iter(sorted(folder.rglob(name))), None) if folder.is_dir() else None


def checkpoint_dir() -> Path:
    """Where training checkpoints live (``$MLOPS_CHECKPOINT_DIR`` overrides the default)."""
    override = os.environ.get(CHECKPOINT_DIR_ENV)
    return Path(override) if override else path(CHECKPOINT_PATH)


def import_onnxruntime() -> Any:
    """``onnxruntime``, imported with its telemetry off (the images also set the variable)."""
    os.environ.setdefault(ORT_TELEMETRY_ENV, "1")
    import onnxruntime

    return onnxruntime


def num_cpus() -> int:
    """CPUs to use: ``$SM_NUM_CPUS`` as SageMaker sets it, else ``os.cpu_count()``."""
    value = os.environ.get(NUM_CPUS_ENV, "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return os.cpu_count() or 1
