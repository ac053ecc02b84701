"""Drift detection rates and monitoring speed, on digits, printed side by side.

Trains a digits model with the image's code on the host (or takes ``--model-dir``), writes
the baseline (the Evaluate step's baseline output), then for each shift kind of ``local_mlops.monitoring.shifts``
at its default strength runs ``--trials`` monitoring windows of ``--requests`` captured
requests drawn from the test split, and counts the windows with a violation: the
monitor's rule (``Robust``: distance over the threshold *and* a corrected test) next to
Model Monitor's distance-only rule (``Simple``) on the same windows. Last, one monitoring
run over ``--records`` captured records as a subprocess (interpreter and imports included),
with the default backend (ONNX Runtime on the artifact's model.onnx) and with PyTorch, next to
reading, decoding and resizing the same records alone.

Goals: every shift detected in >= 95% of trials, unshifted traffic flagged in <= 5%, and
10,000 records monitored in <= 30 s.

    python benchmarks/drift_detection.py [--trials 20] [--requests 200] [--records 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "containers"))

from local_mlops.monitoring.records import capture_record  # noqa: E402
from local_mlops.monitoring.shifts import SHIFTS, png_bytes, shifted_sample  # noqa: E402
from mlops_container import baseline, evaluate, importer, monitor, preprocess, train  # noqa: E402
from mlops_container.capture import image_batches, read_window  # noqa: E402
from mlops_container.modelfeatures import BATCH  # noqa: E402

T0 = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
ANSWER = {"predictions": [{"label": "0", "index": 0, "probabilities": {}}]}


def prepare(work: Path, epochs: int, model_dir: Path | None) -> Path:
    """Digits import -> preprocess -> train (unless given) -> evaluate -> baseline, cached."""
    if (work / "baseline/statistics.json").is_file():
        return work
    os.environ["SAGEMAKER_BASE_DIR"] = str(work / "job")
    ds = work / "ds"
    importer.main(["--dataset", "digits", "--output", str(ds), "--base-uri", str(ds)])
    preprocess.main(["--input-dir", str(ds), "--output-dir", str(work / "prep")])
    if model_dir is None:
        (work / "job/input/config").mkdir(parents=True, exist_ok=True)
        hyper = {"epochs": str(epochs), "backbone": '"resnet18"'}
        (work / "job/input/config/hyperparameters.json").write_text(json.dumps(hyper))
        for channel in ("train", "validation"):
            (work / "job/input/data").mkdir(parents=True, exist_ok=True)
            (work / "job/input/data" / channel).symlink_to(work / "prep" / channel)
        assert train.main([]) == 0, "training failed"
        model_dir = work / "job/model"
    (work / "model").symlink_to(model_dir.resolve())
    evaluate.main(["--model-dir", str(work / "model"), "--test-dir", str(work / "prep/test"),
                   "--output-dir", str(work / "evaluation")])  # fmt: skip
    assert baseline.main(["--model-dir", str(work / "model"),
                          "--validation-dir", str(work / "prep/validation"),
                          "--evaluation-dir", str(work / "evaluation"),
                          "--output-dir", str(work / "baseline")]) == 0  # fmt: skip
    return work


def write_capture(folder: Path, images: np.ndarray, per_file: int = 1000) -> None:
    """Capture files of PNG requests, ``per_file`` records each, one second apart."""
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(images), per_file):
        lines = [
            json.dumps(capture_record(png_bytes(image), ANSWER, T0 + timedelta(seconds=start + i)))
            for i, image in enumerate(images[start : start + per_file])
        ]
        (folder / f"{start:06d}.jsonl").write_text("\n".join(lines) + "\n")


def monitor_args(work: Path, capture: Path, out: Path) -> list[str]:
    return ["--capture-dir", str(capture), "--baseline-dir", str(work / "baseline"),
            "--model-dir", str(work / "model"), "--output-dir", str(out)]  # fmt: skip


def trial(work: Path, images: np.ndarray, labels: np.ndarray, kind: str | None, seed: int,
          requests: int) -> tuple[bool, bool, list[str]]:  # fmt: skip
    """(monitor flagged, distance-only rule flagged, violated features) for one window."""
    rng = np.random.default_rng(seed)
    window, _ = shifted_sample(images, labels, requests, kind, None, rng)
    with tempfile.TemporaryDirectory(prefix="drift-trial-") as tmp:
        write_capture(Path(tmp) / "capture", window)
        args = monitor.build_parser().parse_args(monitor_args(work, Path(tmp) / "capture",
                                                              Path(tmp) / "out"))  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):
            summary = monitor.monitor(args)
    simple = any(
        c["distance"] > c["threshold"]
        for c in summary["checks"]
        if c["test"] != "mannwhitneyu_less"
    )
    return summary["violations"] > 0, simple, summary["violated_features"]


def timing(
    work: Path, images: np.ndarray, labels: np.ndarray, records: int
) -> tuple[float, float, float]:
    """Seconds for a monitoring subprocess over ``records`` with ONNX Runtime (the default
    backend) and with PyTorch, and seconds to read + decode + resize them alone."""
    window, _ = shifted_sample(images, labels, records, None, None, np.random.default_rng(0))
    size = json.loads((work / "model/model.json").read_text())["image_size"]
    with tempfile.TemporaryDirectory(prefix="drift-timing-") as tmp:
        capture = Path(tmp) / "capture"
        write_capture(capture, window)
        started = time.perf_counter()
        read = read_window(capture, None, None)
        decoded = sum(len(arrays) for arrays, _ in image_batches(read.items, size, BATCH))
        assert decoded == records, decoded
        decode = time.perf_counter() - started
        env = {**os.environ, "PYTHONPATH": str(ROOT / "containers")}
        seconds = []
        for backend in ("auto", "torch"):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mlops_container.monitor",
                            *monitor_args(work, capture, Path(tmp) / backend),
                            "--backend", backend],
                           check=True, env=env, capture_output=True)  # fmt: skip
            seconds.append(time.perf_counter() - started)
            summary = json.loads((Path(tmp) / backend / "summary.json").read_text())
            assert summary["readable"] == records, summary
        return seconds[0], seconds[1], decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model-dir", type=Path, default=None, help="a trained digits model")
    parser.add_argument("--work", type=Path, default=None, help="reuse this folder (cache)")
    parser.add_argument("--kinds", default="none," + ",".join(SHIFTS))
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="drift-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    prepare(work, args.epochs, args.model_dir)
    with np.load(work / "prep/test/data.npz") as data:
        images, labels = data["images"], data["labels"]
    accuracy = json.loads((work / "evaluation/evaluation.json").read_text())
    print(f"model test accuracy {accuracy['multiclass_classification_metrics']['accuracy']['value']:.3f}; "
          f"test split {len(images)} images; {args.trials} trials x {args.requests} requests")  # fmt: skip
    print(f"{'shift':<12} {'strength':>8} {'monitor (Robust)':>18} {'distance only':>14}  "
          f"{'goal':<8} most flagged features")  # fmt: skip
    for name in args.kinds.split(","):
        kind = None if name == "none" else name
        results = [trial(work, images, labels, kind, seed, args.requests)
                   for seed in range(args.trials)]  # fmt: skip
        ours = sum(r[0] for r in results) / len(results)
        simple = sum(r[1] for r in results) / len(results)
        features = Counter(f for r in results for f in r[2]).most_common(4)
        goal = "<= 5%" if kind is None else ">= 95%"
        met = ours <= 0.05 if kind is None else ours >= 0.95
        strength = "-" if kind is None else f"{SHIFTS[kind][0]:g}"
        print(f"{name:<12} {strength:>8} {ours:>17.0%} {simple:>14.0%}  {goal:<6} "
              f"{'ok' if met else 'MISS'}  {', '.join(f'{f} {n}' for f, n in features)}",
              flush=True)  # fmt: skip
    seconds, torch_seconds, decode = timing(work, images, labels, args.records)
    print(f"monitoring run over {args.records} records: {seconds:.1f} s with ONNX Runtime "
          f"(goal <= 30 s), {torch_seconds:.1f} s with PyTorch (--backend torch); reading + "
          f"decoding them alone: {decode:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
