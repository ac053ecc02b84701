#!/usr/bin/env bash
# The main job on a fresh machine: install, start the dev environment, build the image, check.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/${LOCAL_MLOPS_VENV:-.venv}/bin:$PATH"
local-mlops up
local-mlops doctor
