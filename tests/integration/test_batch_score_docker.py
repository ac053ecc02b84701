"""The graph's optional BatchScore step in Docker: `run --batch-input` ends with a batch transform
of a folder by the model the run created (the digits run's steps come from the cache)."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from local_mlops.pipeline import runner
from local_mlops.s3 import s3_client


def test_a_run_with_a_batch_input_writes_one_out_per_image(
    digits_runs: Any, serving_image: str, tmp_path: Path
) -> None:
    folder = tmp_path / "batch"
    (folder / "more").mkdir(parents=True)
    rng = np.random.default_rng(3)
    names = ["a.png", "b.png", "more/c.png"]
    for name in names:
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(buffer, "PNG")
        (folder / name).write_bytes(buffer.getvalue())
    (folder / "broken.png").write_bytes(b"not a png")
    # Its own model package group: the digits run's versions stay as the e2e tests expect.
    settings = replace(digits_runs.settings, model_package_group="e2e-batch-score")
    options = runner.RunOptions(parameters={"AccuracyThreshold": 0.0}, batch_input=str(folder))
    result = runner.run(settings, options, say=print)

    assert result.succeeded, result.failure_reason
    cached = {s["StepName"] for s in result.steps if s.get("CacheHitResult")}
    assert "Train" in cached  # the digits run's training is reused, not repeated
    assert {s["StepName"]: s["StepStatus"] for s in result.steps}["BatchScore"] == "Succeeded"
    assert result.batch_outputs == 4 and result.batch_output.startswith("s3://")
    bucket, _, prefix = result.batch_output.removeprefix("s3://").partition("/")
    client = s3_client(settings, digits_runs.url)
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    keys = sorted(item["Key"][len(prefix) :].lstrip("/") for item in listed)
    assert keys == sorted(f"{name}.out" for name in [*names, "broken.png"])
    for name in names:
        body = client.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/{name}.out")["Body"]
        [prediction] = json.loads(body.read())["predictions"]
        assert prediction["label"] in {str(digit) for digit in range(10)}
        assert len(prediction["top_k"]) == 3
    broken = client.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/broken.png.out")["Body"]
    assert json.loads(broken.read())["status"] == 400
