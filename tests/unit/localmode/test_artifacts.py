"""A local training job's model.tar.gz: every host's model files, a tar.gz that readers open."""

from __future__ import annotations

import tarfile
from pathlib import Path
from types import SimpleNamespace

from local_mlops.targets.localmode.jobs import JobContainer


def _job(root: Path) -> tuple[SimpleNamespace, dict]:
    host = "algo-1-abcde"
    model, output = root / host / "model", root / host / "output"
    (output / "data").mkdir(parents=True)
    model.mkdir(parents=True)
    (model / "model.onnx").write_bytes(bytes(range(256)) * 4096)
    (model / "model.json").write_text('{"classes": ["0", "1"]}')
    (output / "data" / "metrics.json").write_text('{"val_accuracy": 0.99}')
    volumes = [f"{model}:/opt/ml/model", f"{output}:/opt/ml/output", f"{root}/in:/opt/ml/input"]
    container = SimpleNamespace(container_root=str(root), hosts=[host], sagemaker_session=None)
    return container, {"services": {host: {"volumes": volumes}}}


def test_the_model_archive_holds_the_model_files_and_opens_as_tar_gz(tmp_path: Path) -> None:
    container, compose = _job(tmp_path)
    uri = JobContainer.retrieve_artifacts(
        container,  # type: ignore[arg-type]
        compose,
        {"S3OutputPath": ""},
        "train-1",
    )
    assert uri.startswith("file://") and uri.endswith("/model.tar.gz")
    archive = Path(uri.removeprefix("file://"))
    with tarfile.open(archive, "r:gz") as tar:
        assert sorted(tar.getnames()) == ["model.json", "model.onnx"]
        onnx = tar.extractfile("model.onnx")
        assert onnx is not None and onnx.read() == bytes(range(256)) * 4096
    with tarfile.open(archive.with_name("output.tar.gz"), "r:gz") as tar:
        assert "data/metrics.json" in tar.getnames()
    # Stored, not compressed: weights barely shrink and gzip -9 cost seconds of the run.
    assert archive.stat().st_size > 4096 * 256
    assert not (tmp_path / "artifacts" / "model").exists()
