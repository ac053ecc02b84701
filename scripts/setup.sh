#!/usr/bin/env bash
# Shared set-up for quickstart.sh and test.sh: Docker engine, the project's virtualenv, the image.
# Re-running is cheap: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[setup] $*" >&2; }

scripts/install-docker.sh
scripts/install-browser.sh

VENV="${LOCAL_MLOPS_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    log "Creating the virtualenv $VENV ..."
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.local-mlops-installed-$(cat pyproject.toml containers/requirements.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    log "Installing local-mlops with its dev and container extras (torch is large; a few minutes) ..."
    "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[dev,container]' 2>&1 \
        | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -c 'import local_mlops, torch, torchvision, sagemaker' \
        || { log "the install failed; see the pip output above"; exit 1; }
    touch "$stamp"
fi
export PATH="$PWD/$VENV/bin:$PATH"
log "Building the runtime and serving images (offline when no registry answers; cached after the first time) ..."
local-mlops build
