#!/usr/bin/env bash
# Refresh the lock files from their ranges (pyproject.toml, containers/*requirements.txt):
# the host's (requirements/*.lock, what scripts/setup.sh installs) and each image's
# (containers/requirements.lock, containers/emulator/requirements.lock, used by the Dockerfiles).
# uv resolves (fast, hashes from the indexes); the indexes are pip's own, so the locked torch is
# the one pip installs here. Commit the result; installs then take exactly these versions.
set -euo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-uv}"
command -v "$UV" >/dev/null || { echo "uv is not installed: pip install uv" >&2; exit 1; }
# pip's extra indexes and find-links (on these machines: torch/torchvision on the local disk).
indexes=()
for url in $(pip config get global.extra-index-url 2>/dev/null || true); do
    indexes+=(--extra-index-url "$url")
done
for dir in $(pip config get global.find-links 2>/dev/null || true); do
    indexes+=(--find-links "$dir")
done
lock() {  # OUTPUT INPUT [uv pip compile options...]
    local output="$1"; shift
    "$UV" pip compile --quiet --generate-hashes --python-version 3.11 \
        --python-platform x86_64-manylinux_2_28 --index-strategy unsafe-best-match \
        --no-emit-index-url --no-emit-find-links --custom-compile-command scripts/lock.sh \
        "${indexes[@]}" -o "$output" "$@"
}
mkdir -p requirements
lock requirements/dev.lock pyproject.toml --extra dev --extra container
# The CLI alone (what the main job needs), at the same versions as the test environment.
lock requirements/host.lock pyproject.toml -c requirements/dev.lock
lock containers/requirements.lock containers/requirements.txt
lock containers/requirements-serving.lock containers/requirements-serving.txt -c containers/requirements.lock
lock containers/emulator/requirements.lock containers/emulator/requirements.txt
for extra in containers/*/requirements.txt; do  # other images (each folder with its own)
    [ "$extra" = containers/emulator/requirements.txt ] && continue
    lock "${extra%.txt}.lock" "$extra"
done
echo "locked: requirements/dev.lock requirements/host.lock containers/**/requirements.lock" >&2
