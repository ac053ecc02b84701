"""The graph's step names: what `runs describe`, the live step view and the docs show.

A leaf module (no SDK import), so the CLI and the targets can name steps without paying for
``import sagemaker`` (seconds of CPU) before they need the SDK itself.
"""

from __future__ import annotations

VALIDATE = "ValidateData"
PREPROCESS = "Preprocess"
TRAIN = "Train"
TUNE = "Tune"
EVALUATE = "Evaluate"
CHECK = "CheckAccuracy"
REGISTER = "RegisterModel"
CREATE_MODEL = "CreateModel"
FAIL = "AccuracyTooLow"
BATCH_SCORE = "BatchScore"  # only with `run --batch-input`

# The steps that run as processing jobs (what a cloud run pays processing instances for).
PROCESSING = (VALIDATE, PREPROCESS, EVALUATE)
