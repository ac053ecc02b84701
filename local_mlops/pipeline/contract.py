"""The values the pipeline and the runtime image must agree on, written once on this side.

The image writes them once on its side (``containers/mlops_container/contract.py``); the two
packages never import each other, and ``tests/unit/test_contract.py`` reads both and checks they
agree. Change a value here and there together.
"""

from __future__ import annotations

# The training job prints one line per epoch, ``name=value`` for each of these (containers/ML.md);
# SageMaker (and the local tuning step) read them with METRIC_DEFINITIONS' regexes.
METRIC_NAMES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "images_per_sec")
METRIC_DEFINITIONS = [{"Name": name, "Regex": f"{name}=([0-9\\.]+)"} for name in METRIC_NAMES]
OBJECTIVE_METRIC = "val_accuracy"  # what tuning maximises

# The Evaluate step's report: SageMaker's model-quality format.
EVALUATION_OUTPUT = "evaluation"  # the processing output's name
EVALUATION_FILE = "evaluation.json"
METRICS_SECTION = "multiclass_classification_metrics"
ACCURACY_PATH = f"{METRICS_SECTION}.accuracy.value"  # what the accuracy gate reads (JsonGet)

# What the model accepts and answers (the model package's inference specification).
CONTENT_TYPES = (
    "image/png",
    "image/jpeg",
    "application/x-image",
    "application/x-npy",
    "application/json",
    "application/jsonlines",
)
RESPONSE_TYPES = ("application/json", "application/jsonlines")
# Batch transform: the content type every input image is sent as (the server reads PNG and JPEG
# under it), and the variables a transform job sets for the serving container.
TRANSFORM_CONTENT_TYPE = "application/x-image"
# A local folder is packed into JSON Lines shards (one {"name", "b64"} line an image) and split
# by line: the job posts many images a request, answered one JSON line each.
TRANSFORM_PACKED_CONTENT_TYPE = "application/jsonlines"
TOP_K_ENV = "MLOPS_TOP_K"
RECORD_ERRORS_ENV = "MLOPS_RECORD_ERRORS"
# Local endpoints: the serving container also listens on a Unix socket in a mounted folder.
UNIX_SOCKET_ENV = "MLOPS_UNIX_SOCKET"

# Training channels, and the preprocessing step's outputs (one folder each).
TRAIN_CHANNEL = "train"
VALIDATION_CHANNEL = "validation"
PRETRAINED_CHANNEL = "pretrained"
TEST_SPLIT = "test"
META_OUTPUT = "meta"
BASELINE_OUTPUT = "baseline"
PREPROCESS_OUTPUTS = (TRAIN_CHANNEL, VALIDATION_CHANNEL, TEST_SPLIT, META_OUTPUT, BASELINE_OUTPUT)

# Where processing jobs read and write inside the container (the image's argparse defaults).
PROCESSING_ROOT = "/opt/ml/processing"
PROCESSING_INPUT_DATA = f"{PROCESSING_ROOT}/input/data"  # validate, preprocess: the shards
PROCESSING_OUTPUT = f"{PROCESSING_ROOT}/output"  # preprocess: one folder per output
PROCESSING_REPORT = f"{PROCESSING_ROOT}/output/report"  # validate
PROCESSING_MODEL = f"{PROCESSING_ROOT}/model"  # evaluate: the model artifact
PROCESSING_TEST = f"{PROCESSING_ROOT}/test"  # evaluate: the test split
PROCESSING_EVALUATION = f"{PROCESSING_ROOT}/evaluation"  # evaluate: the report
PROCESSING_VALIDATION = f"{PROCESSING_ROOT}/validation"  # evaluate, baseline: validation split
PROCESSING_BASELINE = f"{PROCESSING_ROOT}/baseline"  # evaluate (baseline): out; monitor: in
PROCESSING_CAPTURE = f"{PROCESSING_ROOT}/input/capture"  # monitor: captured requests
PROCESSING_GROUND_TRUTH = f"{PROCESSING_ROOT}/input/groundtruth"  # monitor: ground truth
PROCESSING_MONITOR_OUTPUT = f"{PROCESSING_ROOT}/output"  # monitor: the report

# Monitoring: the Evaluate step's baseline output (the drift-check baselines) and the monitor's report,
# in Model Monitor's file names.
BASELINE_STEP_OUTPUT = "baseline"
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
MODEL_QUALITY_CONSTRAINTS_FILE = "model_quality_constraints.json"
VIOLATIONS_FILE = "constraint_violations.json"
SUMMARY_FILE = "summary.json"

# The model artifact training leaves in /opt/ml/model (SageMaker tars it as model.tar.gz).
MODEL_WEIGHTS_FILE = "model.pt"
MODEL_META_FILE = "model.json"
MODEL_ARCHIVE_FILE = "model.tar.gz"
DATA_FILE = "data.npz"  # each split preprocess writes: uint8 images, labels
