#!/usr/bin/env bash
# Make sure a headless Chromium is available for the browser UI tests (tests/ui, marker `ui`).
# Installs Debian's chromium and chromium-driver with apt when either is missing; does nothing
# when both are there, so it is safe to re-run. Playwright's own browser download does not work
# behind the package-registry-only proxy: the tests launch /usr/bin/chromium instead
# (override with LOCAL_MLOPS_CHROMIUM).
set -euo pipefail
log() { echo "[install-browser] $*" >&2; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

if [ -n "${LOCAL_MLOPS_CHROMIUM:-}" ] && [ -x "$LOCAL_MLOPS_CHROMIUM" ]; then
    log "using LOCAL_MLOPS_CHROMIUM=$LOCAL_MLOPS_CHROMIUM"
    exit 0
fi
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    log "chromium and chromedriver are installed: $(chromium --version 2>/dev/null || echo '?')"
    exit 0
fi
command -v apt-get >/dev/null || {
    log "no apt-get: install Chromium by hand and set LOCAL_MLOPS_CHROMIUM to its binary"
    exit 1
}
log "Installing Debian's chromium and chromium-driver with apt ..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
chromium --version >/dev/null 2>&1 || { log "chromium was installed but does not start"; exit 1; }
log "Installed $(chromium --version)."
