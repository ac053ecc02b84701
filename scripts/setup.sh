#!/usr/bin/env bash
# Shared set-up for quickstart.sh and test.sh: Docker engine, the project's virtualenv, the image.
#   scripts/setup.sh         what the main job needs: the CLI from requirements/host.lock
#   scripts/setup.sh --test  the test command's too: requirements/dev.lock (pytest, ruff, mypy,
#                            torch for the container-code tests) and a headless browser
# Both install exactly the locked versions (pip --require-hashes); scripts/lock.sh refreshes the
# locks. Re-running is cheap: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[setup] $*" >&2; }
LOCK=requirements/host.lock
if [ "${1:-}" = "--test" ]; then
    LOCK=requirements/dev.lock
fi

scripts/install-docker.sh
if [ "$LOCK" = requirements/dev.lock ]; then
    scripts/install-browser.sh
fi

VENV="${LOCAL_MLOPS_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    log "Creating the virtualenv $VENV ..."
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.local-mlops-installed-$(cat "$LOCK" pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    log "Installing the locked packages of $LOCK (with torch for tests: a few minutes) ..."
    "$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$LOCK" 2>&1 \
        | grep -v "^WARNING: Location" || true
    # The project itself, with no dependencies of its own beyond the locked ones.
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e . 2>&1 \
        | grep -v "^WARNING: Location" || true
    check='import local_mlops, sagemaker'
    [ "$LOCK" = requirements/dev.lock ] && check="$check, torch, torchvision, pytest"
    "$VENV/bin/python" -c "$check" || { log "the install failed; see the pip output above"; exit 1; }
    touch "$stamp"
fi
export PATH="$PWD/$VENV/bin:$PATH"
log "Building the runtime and serving images (offline when no registry answers; cached after the first time) ..."
local-mlops build
