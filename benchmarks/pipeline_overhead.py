"""Orchestration overhead of `local-mlops run --local` on digits.

Runs the pipeline once with caching off and once more with caching on (everything served from
the cache), and prints the wall time next to the sum of the job containers' lifetimes (start to
exit, from `docker events`), i.e. the time spent inside the containers. Goal: overhead under
25% of the total for the default run.

    python benchmarks/pipeline_overhead.py [--epochs 6]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from dataclasses import replace
from typing import Any

from local_mlops.config import load_settings
from local_mlops.devenv.emulator import s3_endpoint
from local_mlops.pipeline import datasets, runner


def container_seconds(events: list[dict[str, Any]]) -> float:
    started: dict[str, int] = {}
    total = 0
    for event in events:
        if event.get("status") == "start":
            started[event["id"]] = int(event["timeNano"])
        elif event.get("status") == "die" and event["id"] in started:
            total += int(event["timeNano"]) - started.pop(event["id"])
    return total / 1e9


def timed_run(settings: Any, options: runner.RunOptions) -> tuple[runner.RunResult, float, float]:
    watcher = subprocess.Popen(
        ["docker", "events", "--format", "{{json .}}", "--filter", "type=container"],
        stdout=subprocess.PIPE,
        text=True,
    )
    started = time.perf_counter()
    result = runner.run(settings, options, say=lambda _: None)
    wall = time.perf_counter() - started
    watcher.terminate()
    out, _ = watcher.communicate(timeout=10)
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    return result, wall, container_seconds(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    settings = load_settings({"epochs": args.epochs} if args.epochs else {})
    with s3_endpoint(settings) as endpoint:
        settings = replace(settings, s3_endpoint=endpoint.url)
        datasets.resolve_input(settings, endpoint.url, settings.dataset, None, say=lambda _: None)
        params = {"Epochs": settings.epochs}
        cold, cold_wall, cold_inside = timed_run(
            settings, runner.RunOptions(cache=False, parameters=params)
        )
        warm, warm_wall, warm_inside = timed_run(
            settings, runner.RunOptions(cache=True, parameters=params)
        )
    for result in (cold, warm):
        assert result.succeeded, result.failure_reason
    overhead = cold_wall - cold_inside
    print(f"digits, {settings.backbone}, {settings.epochs} epochs, 2 cores")
    print(f"{'':34}{'wall s':>8}{'in containers s':>17}{'overhead':>10}")
    print(
        f"{'run --no-cache':34}{cold_wall:>8.1f}{cold_inside:>17.1f}{overhead / cold_wall:>10.1%}"
    )
    print(f"{'re-run, all steps from the cache':34}{warm_wall:>8.1f}{warm_inside:>17.1f}{'':>10}")


if __name__ == "__main__":
    main()
