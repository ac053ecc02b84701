#!/usr/bin/env bash
# The main job on a fresh machine: install, build the image, start the dev environment, check it,
# and run the whole pipeline locally on the embedded digits dataset (auto_approve then deploys the
# new version, and first_report leaves a monitoring report over a burst of sample traffic).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/${LOCAL_MLOPS_VENV:-.venv}/bin:$PATH"
local-mlops up
local-mlops doctor
local-mlops run --local "$@"
echo "Open the dashboard: source .venv/bin/activate && local-mlops ui   (then http://127.0.0.1:8765:" >&2
echo "  the run, the registered version, the endpoint and its first monitoring report)" >&2
