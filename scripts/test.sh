#!/usr/bin/env bash
# The test command: lint, type check, unit tests and the Docker integration tests, for real.
# LOCAL_MLOPS_REQUIRE_DOCKER=1 turns "Docker unavailable -> skip" into a failure, and any skipped
# test fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PATH="$PWD/${LOCAL_MLOPS_VENV:-.venv}/bin:$PATH"
export LOCAL_MLOPS_REQUIRE_DOCKER=1
echo "[test] ruff" >&2
ruff check local_mlops containers tests benchmarks
ruff format --check local_mlops containers tests benchmarks
echo "[test] mypy" >&2
mypy local_mlops containers/mlops_container containers/emulator/durable_s3
echo "[test] pytest" >&2
pytest "$@"
