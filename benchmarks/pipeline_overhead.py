"""Where the default run's time goes: `local-mlops run --local` on digits against a bare loop.

In one run of this script, one after the other on the same machine (so a shared CPU slows all
of them alike):
- the bare PyTorch loop (``mlops_container.bench``) in the runtime image, doing the Train step's
  training work (the same epochs over the same preprocessed training split), timed inside;
- the default run with caching off: its wall time next to the time spent inside job containers
  (start to exit, from `docker events`), per step;
- a run with caching on, which fills the step cache (a `--no-cache` run writes no entries),
  then the same run again, every step served from that cache.
It prints both ratios the issue sets goals for: orchestration overhead (wall time outside job
containers, as a share of the wall time; goal <= 8%) and the whole run against the bare loop's
time for the same training work (goal <= 1.4x).

    python benchmarks/pipeline_overhead.py [--epochs 6] [--rounds 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import tempfile
import time
from dataclasses import replace
from typing import Any

from local_mlops.config import Settings, load_settings
from local_mlops.devenv.emulator import s3_endpoint
from local_mlops.pipeline import datasets, runner
from local_mlops.s3 import s3_client


def container_spans(events: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(start, exit) of every container, in epoch seconds."""
    started: dict[str, float] = {}
    spans = []
    for event in events:
        if event.get("status") == "start":
            started[event["id"]] = int(event["timeNano"]) / 1e9
        elif event.get("status") == "die" and event["id"] in started:
            spans.append((started.pop(event["id"]), int(event["timeNano"]) / 1e9))
    return spans


def timed_run(
    settings: Settings, options: runner.RunOptions
) -> tuple[runner.RunResult, float, list]:
    watcher = subprocess.Popen(
        ["docker", "events", "--format", "{{json .}}", "--filter", "type=container"],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)  # let the watcher subscribe before the first container starts
    started = time.perf_counter()
    result = runner.run(settings, options, say=lambda _: None)
    wall = time.perf_counter() - started
    time.sleep(0.5)
    watcher.terminate()
    out, _ = watcher.communicate(timeout=10)
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    return result, wall, container_spans(events)


def _epoch(value: Any) -> float:
    return dt.datetime.fromisoformat(str(value)).timestamp() if value else 0.0


def per_step(
    result: runner.RunResult, spans: list[tuple[float, float]]
) -> list[tuple[str, float, float]]:
    """(step, its wall time, time inside its containers) for every step of the run."""
    rows = []
    for step in result.steps:
        begin, end = _epoch(step.get("StartTime")), _epoch(step.get("EndTime"))
        inside = sum(b - a for a, b in spans if begin - 0.05 <= a <= end)
        rows.append((str(step["StepName"]), end - begin, inside))
    return rows


def bare_loop_seconds(
    settings: Settings, url: str, result: runner.RunResult, epochs: int
) -> tuple[float, int]:
    """The bare loop's time for the Train step's work, on the split this run made."""
    execution_id = result.execution_arn.rsplit("/", 1)[-1]
    prefix = f"{settings.pipeline_name}/{execution_id}/Preprocess/output/train/data.npz"
    with tempfile.TemporaryDirectory(prefix="bench-bare-") as tmp:
        s3_client(settings, url).download_file(settings.bucket, prefix, f"{tmp}/data.npz")
        snippet = (
            "import numpy, pathlib; from mlops_container.bench import bare_loop; "
            "n = len(numpy.load('/w/data.npz')['labels']); "
            f"print(n, bare_loop(pathlib.Path('/w/data.npz'), '{settings.backbone}', {epochs}))"
        )
        done = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "-v",
                f"{tmp}:/w",
                settings.image_uri,
                "python3",
                "-c",
                snippet,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    count, rate = done.stdout.split()[-2:]
    return epochs * int(count) / float(rate), int(count)


def epochs_rate(bare_seconds: float, count: int, settings: Settings) -> float:
    return settings.epochs * count / bare_seconds if bare_seconds else 0.0


def train_step_rate(settings: Settings, url: str, result: runner.RunResult) -> float:
    """The Train step's own images/s over its epochs (model.json's metrics, from the artifact)."""
    import io
    import tarfile

    package = result.model_package or {}
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    uri = str(containers[0].get("ModelDataUrl", ""))
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not key:
        return 0.0
    body = s3_client(settings, url).get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        member = archive.extractfile("model.json")
        meta = json.loads(member.read()) if member else {}
    return float(meta.get("metrics", {}).get("images_per_sec", 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=1, help="Repeat (bare loop, run) pairs.")
    args = parser.parse_args()
    settings = load_settings({"epochs": args.epochs} if args.epochs else {})
    rows: list[dict[str, Any]] = []
    with s3_endpoint(settings) as endpoint:
        settings = replace(settings, s3_endpoint=endpoint.url)
        datasets.resolve_input(settings, endpoint.url, settings.dataset, None, say=lambda _: None)
        params = {"Epochs": settings.epochs}
        for _ in range(args.rounds):
            cold, wall, spans = timed_run(
                settings, runner.RunOptions(cache=False, parameters=params)
            )
            assert cold.succeeded, cold.failure_reason
            bare, count = bare_loop_seconds(settings, endpoint.url, cold, settings.epochs)
            inside = sum(b - a for a, b in spans)
            rates = (
                train_step_rate(settings, endpoint.url, cold),
                epochs_rate(bare, count, settings),
            )
            rows.append(
                {"wall": wall, "inside": inside, "bare": bare, "steps": per_step(cold, spans),
                 "rates": rates}
            )  # fmt: skip
        cached = runner.RunOptions(cache=True, parameters=params)
        fill, fill_wall, fill_spans = timed_run(settings, cached)
        assert fill.succeeded, fill.failure_reason
        warm, warm_wall, warm_spans = timed_run(settings, cached)
        assert warm.succeeded, warm.failure_reason

    print(
        f"digits, {settings.backbone}, {settings.epochs} epochs, {count} training images, 2 cores"
    )
    print("(one machine shared with other work: compare figures of the same run, not across runs)")
    print(f"{'':38}{'wall s':>8}{'in containers s':>17}")
    for i, row in enumerate(rows, 1):
        print(f"{f'round {i}: bare loop, Train step work':38}{row['bare']:>8.1f}")
        print(f"{f'round {i}: run --no-cache':38}{row['wall']:>8.1f}{row['inside']:>17.1f}")
        for name, step_wall, step_inside in row["steps"]:
            print(f"{'  ' + name:38}{step_wall:>8.1f}{step_inside:>17.1f}")
    for i, row in enumerate(rows, 1):
        train_rate, bare_rate = row["rates"]
        print(f"round {i}: Train step's epochs {train_rate:.1f} img/s (fused AdamW/SGD kernels, "
              f"augmentation), bare loop {bare_rate:.1f} img/s (torch's default AdamW)")  # fmt: skip
    fill_inside = sum(b - a for a, b in fill_spans)
    print(f"{'run with the cache on (fills it)':38}{fill_wall:>8.1f}{fill_inside:>17.1f}")
    warm_inside = sum(b - a for a, b in warm_spans)
    reused = sum(1 for step in warm.steps if step.get("CacheHitResult"))
    label = f"re-run ({reused}/{len(warm.steps)} steps from the cache)"
    print(f"{label:38}{warm_wall:>8.1f}{warm_inside:>17.1f}")
    overhead = statistics.median((r["wall"] - r["inside"]) / r["wall"] for r in rows)
    versus_bare = statistics.median(r["wall"] / r["bare"] for r in rows)
    print(
        f"orchestration overhead (wall outside job containers / wall): {overhead:.1%} (goal <= 8%)"
    )
    print(f"whole run / bare loop for the same training work: {versus_bare:.2f}x (goal <= 1.4x)")


if __name__ == "__main__":
    main()
