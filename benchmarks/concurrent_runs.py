"""Two local runs started together against two runs in a row, on the same machine.

Before the core budget, two runs started together each took 206 s in Train against 45 s alone
(two trainings oversubscribing 2 cores). With it, jobs of concurrent runs take turns on the
cores, so the pair should finish no later than the same two runs one after the other. Prints the
wall time of each scenario side by side, and how long the jobs waited for cores.

Needs the runtime image (`local-mlops build`) and starts the dev environment (`local-mlops up`)
so the runs share one S3 emulator. Takes a few minutes with the defaults; not part of CI.

    python benchmarks/concurrent_runs.py [--epochs 2] [--without-budget]

``--without-budget`` adds the old behaviour as a third scenario (the budget raised to twice the
machine's cores, so both trainings run at once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from local_mlops.config import load_settings
from local_mlops.devenv import compose


def start_run(epochs: int, env: dict[str, str]) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "local_mlops", "run", "--local", "--no-cache", "--json"]
    argv += ["--epochs", str(epochs)]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )


def finish(process: subprocess.Popen[str]) -> dict:
    out, _ = process.communicate(timeout=3600)
    result = json.loads(out)
    assert result["succeeded"], result.get("failure_reason")
    return dict(result)


def waited_seconds(log: Path, since: float) -> float:
    if not log.exists():
        return 0.0
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return sum(e.get("waited", 0.0) for e in entries if e["event"] == "claim" and e["t"] >= since)


def scenario(name: str, epochs: int, together: bool, env: dict[str, str], log: Path) -> tuple:
    since = time.time()
    started = time.perf_counter()
    if together:
        results = [finish(p) for p in [start_run(epochs, env), start_run(epochs, env)]]
    else:
        results = [finish(start_run(epochs, env)) for _ in range(2)]
    wall = time.perf_counter() - started
    versions = [r["model_package"]["ModelPackageVersion"] for r in results if r["model_package"]]
    return name, wall, [r["seconds"] for r in results], waited_seconds(log, since), versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--without-budget", action="store_true")
    args = parser.parse_args()
    settings = load_settings()
    compose.up(settings, say=lambda line: print(line, file=sys.stderr))
    log = settings.state_path / "cores" / "log.jsonl"
    env = dict(os.environ)
    rows = [
        scenario("two runs in a row", args.epochs, False, env, log),
        scenario("two runs together (core budget)", args.epochs, True, env, log),
    ]
    if args.without_budget:
        loose = env | {"LOCAL_MLOPS_LOCAL_CORES": str(2 * (os.cpu_count() or 1))}
        rows.append(scenario("two runs together, no budget", args.epochs, True, loose, log))
    print(f"digits, {settings.backbone}, {args.epochs} epochs, {os.cpu_count()} cores")
    print(f"{'':34}{'wall s':>8}{'each run s':>16}{'waited s':>10}  versions")
    for name, wall, each, waited, versions in rows:
        each_text = " / ".join(f"{s:.0f}" for s in each)
        print(f"{name:34}{wall:>8.1f}{each_text:>16}{waited:>10.1f}  {versions}")


if __name__ == "__main__":
    main()
