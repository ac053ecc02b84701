"""Dashboard page times with 50 runs and 20 registered versions (goal: each page <= 300 ms).

Also 24 hourly monitoring reports of one endpoint (the Monitoring page) and 50 capture files
(the Labeling page).

Seeds a moto server through the real stores (RunStore.save, LocalModelRegistry.register), serves
the dashboard on 127.0.0.1 and fetches every page 20 times, cold (first request) and warm
(median and p95). Printed beside the baseline the CLI pays for the same data in the same run:
`runs list` and `models list` reading every document with the stores' own list calls.

    python benchmarks/dashboard.py [--runs 50] [--versions 20] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from dataclasses import replace
from typing import Any

from local_mlops.config import load_settings
from local_mlops.devenv.emulator import MotoServer
from local_mlops.s3 import ensure_bucket
from local_mlops.targets import open_target
from local_mlops.ui.data import Dashboard
from local_mlops.ui.server import DashboardServer

STEPS = ("ValidateData", "Preprocess", "Train", "Evaluate", "CheckAccuracy")
FEATURES = ("brightness", "contrast", "sharpness", "confidence", "embedding_pc1", "prob_0")


def record(i: int) -> dict[str, Any]:
    start = f"2026-12-01T{i // 60:02d}:{i % 60:02d}:00+00:00"
    end = f"2026-12-01T{i // 60:02d}:{i % 60:02d}:45+00:00"
    return {
        "ExecutionId": f"run{i:04d}",
        "PipelineExecutionArn": f"arn:aws:sagemaker:us-east-1:0:pipeline/p/execution/run{i:04d}",
        "Status": "Succeeded" if i % 7 else "Failed",
        "StartTime": start,
        "EndTime": end,
        "Parameters": {"Epochs": 6, "Backbone": "resnet18", "LearningRate": 0.001 * (1 + i % 3)},
        "Steps": [
            {
                "StepName": s,
                "StepType": "Processing",
                "StepStatus": "Succeeded",
                "StartTime": start,
                "EndTime": end,
                "Attempts": 1,
                "LogTail": ["ok"] * 40,
            }
            for s in STEPS
        ],
    }


def monitoring_report(i: int) -> dict[str, Any]:
    """summary.json of one hourly window, in the monitoring job's layout (docs/monitoring.md)."""
    checks = [
        {
            "feature_name": name,
            "test": "ks_2samp",
            "distance": 0.02 * (1 + (i + n) % 7),
            "threshold": 0.1,
            "p_value": 0.5,
            "p_adjusted": 0.5,
            "drifted": (i + n) % 7 == 6,
        }
        for n, name in enumerate(FEATURES)
    ]
    return {
        "status": "Completed",
        "records": 200,
        "readable": 200,
        "checks": checks,
        "prediction_counts": {str(c): 20 for c in range(10)},
        "model_quality": {"labeled": 20, "accuracy": 0.95, "threshold": 0.9},
    }


def seed_monitoring(s3: Any, bucket: str, reports: int) -> None:
    for i in range(reports):
        folder = f"monitoring/bench-endpoint/2026-12-01T{i % 24:02d}-00-00Z"
        summary = monitoring_report(i)
        violations = [
            {"feature_name": c["feature_name"], "constraint_check_type": "baseline_drift_check",
             "description": f"Baseline drift distance: {c['distance']:.4g} exceeds threshold: 0.1"}
            for c in summary["checks"] if c["drifted"]
        ]  # fmt: skip
        statistics = {
            "version": 0.0,
            "features": [
                {"name": f, "inferred_type": "Fractional",
                 "numerical_statistics": {"mean": 0.5, "distribution": {"kll": {"sketch": {
                     "data": [[0.001 * k for k in range(2048)]]}}}}}
                for f in FEATURES
            ],
        }  # fmt: skip
        for name, doc in (
            ("summary.json", summary),
            ("constraint_violations.json", {"violations": violations}),
            ("statistics.json", statistics),
        ):
            s3.put_object(Bucket=bucket, Key=f"{folder}/{name}", Body=json.dumps(doc))
    line = json.dumps({"captureData": {}, "eventMetadata": {"eventId": "e"}}) + "\n"
    for i in range(50):
        key = f"datacapture/bench-endpoint/AllTraffic/2026/12/01/{i % 24:02d}/{i:04d}.jsonl"
        s3.put_object(Bucket=bucket, Key=key, Body=line * 20)


def timed(url: str, repeat: int) -> tuple[float, float, float]:
    samples = []
    for _ in range(repeat + 1):
        began = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
        samples.append((time.perf_counter() - began) * 1000)
    warm = sorted(samples[1:])
    return samples[0], statistics.median(warm), warm[int(len(warm) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--reports", type=int, default=24)
    args = parser.parse_args()
    with MotoServer("127.0.0.1") as url, tempfile.TemporaryDirectory() as state:
        settings = replace(
            load_settings({"bucket": "bench-ui", "state_dir": state}), s3_endpoint=url
        )
        ensure_bucket(settings, url)
        target = open_target(settings, url)
        s3 = target.session.s3_client
        for i in range(args.runs):
            target.runs.save(record(i))  # type: ignore[attr-defined]
        report = {
            "multiclass_classification_metrics": {
                "accuracy": {"value": 0.99},
                "confusion_matrix": {
                    str(t): {str(p): int(t == p) * 36 for p in range(10)} for t in range(10)
                },
            }
        }
        for v in range(args.versions):
            key = f"eval/{v}/evaluation.json"
            s3.put_object(Bucket=settings.bucket, Key=key, Body=json.dumps(report))
            target.models.register(  # type: ignore[attr-defined]
                settings.model_package_group,
                model_data_url=f"s3://x/{v}.tar.gz",
                image="i",
                model_metrics={
                    "ModelQuality": {"Statistics": {"S3Uri": f"s3://{settings.bucket}/{key}"}}
                },
                metrics={"accuracy": 0.99},
                pipeline_execution_arn=record(v)["PipelineExecutionArn"],
            )
        seed_monitoring(s3, settings.bucket, args.reports)
        began = time.perf_counter()
        target.runs.list()
        runs_cli = (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        target.models.list_packages(settings.model_package_group)
        models_cli = (time.perf_counter() - began) * 1000
        with DashboardServer(Dashboard(settings, target)) as ui:
            print(
                f"{args.runs} runs, {args.versions} versions, {args.reports} monitoring reports; "
                "times in ms (goal: <= 300)"
            )
            print(f"{'page':<22}{'cold':>9}{'warm p50':>10}{'warm p95':>10}")
            for name, path in (
                ("runs", "/runs"),
                ("run", "/runs/run0001"),
                ("compare", "/compare?run=run0001&run=run0002"),
                ("registry", "/models"),
                ("version", "/models/1"),
                ("endpoints", "/endpoints"),
                ("monitoring", "/monitoring/bench-endpoint"),
                ("labeling", "/labeling"),
                ("api/runs (JSON)", "/api/runs"),
            ):
                cold, p50, p95 = timed(ui.url + path, args.repeat)
                print(f"{name:<22}{cold:>9.1f}{p50:>10.1f}{p95:>10.1f}")
        print(
            f"baseline, same data through the CLI's stores: runs list {runs_cli:.1f} ms, "
            f"models list {models_cli:.1f} ms"
        )


if __name__ == "__main__":
    main()
