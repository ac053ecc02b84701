"""`monitor run` in Docker: the monitoring job reads captured data and writes its reports."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from local_mlops.cli.app import app
from local_mlops.config import Settings
from local_mlops.monitoring.records import capture_key, capture_record
from local_mlops.monitoring.shifts import png_bytes, shifted_sample
from local_mlops.s3 import s3_client
from local_mlops.stores.registry import LocalModelRegistry
from mlops_container import baseline, onnx_export
from mlops_container.models import build_model, save_artifact

pytestmark = pytest.mark.docker
ANSWER = {"predictions": [{"label": "c0", "index": 0, "probabilities": {}}]}


def images(count: int, seed: int) -> np.ndarray:
    """Dark 8×8 images with a bright bar, like digits."""
    rng = np.random.default_rng(seed)
    batch = rng.integers(0, 40, (count, 8, 8, 3), dtype=np.uint8)
    for index in range(count):
        batch[index, :, index % 8] = 230
    return batch


def stage_model_and_baseline(tmp: Path, s3: object, bucket: str) -> dict:
    """A small model (model.pt and model.onnx, as training writes them) and its baseline
    output in the bucket, registered with its baselines."""
    model = build_model("mobilenet_v3_small", 2, 8, [0.5] * 3, [0.25] * 3)
    meta = {"architecture": "mobilenet_v3_small", "num_classes": 2, "classes": ["c0", "c1"],
            "image_size": 8, "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3}}  # fmt: skip
    save_artifact(tmp / "model", model, meta)
    onnx_export.export(model, tmp / "model/model.onnx", 8)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for path in (tmp / "model").iterdir():
            tar.add(path, arcname=path.name)
    s3.put_object(Bucket=bucket, Key="models/m/model.tar.gz", Body=archive.getvalue())
    (tmp / "validation").mkdir()
    np.savez(tmp / "validation/data.npz", images=images(80, 0), labels=np.zeros(80, dtype=int))
    assert baseline.main(["--model-dir", str(tmp / "model"), "--validation-dir",
                          str(tmp / "validation"), "--output-dir", str(tmp / "baseline")]) == 0  # fmt: skip
    for path in (tmp / "baseline").iterdir():
        s3.put_object(Bucket=bucket, Key=f"baselines/b/{path.name}", Body=path.read_bytes())
    data = {"Statistics": {"S3Uri": f"s3://{bucket}/baselines/b/statistics.json"},
            "Constraints": {"S3Uri": f"s3://{bucket}/baselines/b/constraints.json"}}  # fmt: skip
    registry = LocalModelRegistry(s3, bucket, "us-east-1")
    return registry.register(
        "local-mlops-image-classifier",
        model_data_url=f"s3://{bucket}/models/m/model.tar.gz",
        image="unused",
        approval_status="Approved",
        drift_check_baselines={"ModelDataQuality": data},
    )


def capture(s3: object, bucket: str, endpoint: str, batch: np.ndarray) -> None:
    when = datetime.now(UTC) - timedelta(minutes=5)
    lines = [json.dumps(capture_record(png_bytes(image), ANSWER, when)) for image in batch]
    key = capture_key(endpoint, when)
    s3.put_object(Bucket=bucket, Key=key, Body=("\n".join(lines) + "\n").encode())


def test_clean_traffic_passes_and_brightened_traffic_is_flagged(
    runtime_image: str,
    s3: tuple[Settings, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, url = s3
    client = s3_client(settings, url)
    stage_model_and_baseline(tmp_path, client, settings.bucket)
    clean = images(80, 1)
    capture(client, settings.bucket, "clean", clean)
    bright, _ = shifted_sample(clean, np.zeros(80), 80, "brightness", 0.3, np.random.default_rng(2))
    capture(client, settings.bucket, "drifted", bright)
    monkeypatch.setenv("LOCAL_MLOPS_S3_ENDPOINT", url)
    monkeypatch.setenv("LOCAL_MLOPS_BUCKET", settings.bucket)
    monkeypatch.setenv("LOCAL_MLOPS_IMAGE_TAG", runtime_image.rsplit(":", 1)[1])
    cli = CliRunner()

    result = cli.invoke(app, ["monitor", "run", "--endpoint", "clean", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("{"), result.stdout[-3000:]
    report = json.loads(result.stdout)
    # The staged model is untrained (its softmax and embedding are degenerate), so only the image
    # statistics are meaningful here; clean traffic with a trained model: tests/unit/containers.
    image_features = {"brightness", "contrast", "sharpness", "mean_r", "mean_g", "mean_b"}
    assert report["records"] == 80 and not image_features & set(report["violated_features"])
    assert report["report_uri"].startswith(f"s3://{settings.bucket}/monitoring/clean/")
    assert report["backend"] == "onnxruntime"  # the image runs model.onnx, the baseline too
    # the job's own output, without compose's (Creating ..., Attaching to ..., ANSI colours)
    assert "monitor records=80" in result.stderr, result.stderr[-3000:]
    assert "Attaching to" not in result.stderr and "\x1b[" not in result.stderr
    # nor the SDK's wait's status mark ("!", no newline), which ran into the next line
    assert not any(line.lstrip().startswith("!") for line in result.stderr.splitlines())

    result = cli.invoke(app, ["monitor", "run", "--endpoint", "drifted", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("{"), result.stdout[-3000:]
    report = json.loads(result.stdout)
    assert "brightness" in report["violated_features"]
    prefix = report["report_uri"].removeprefix(f"s3://{settings.bucket}/")
    stored = client.list_objects_v2(Bucket=settings.bucket, Prefix=prefix)["Contents"]
    names = {o["Key"].rsplit("/", 1)[-1] for o in stored}
    assert names == {"statistics.json", "constraint_violations.json", "summary.json"}
    body = client.get_object(Bucket=settings.bucket, Key=f"{prefix}constraint_violations.json")
    violations = json.loads(body["Body"].read())["violations"]
    assert {"feature_name", "constraint_check_type", "description"} <= set(violations[0])
