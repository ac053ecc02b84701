"""The training entry point on tiny data: artifact, metrics, failures, resume, determinism."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import onnxruntime
import pytest
import torch
import torchvision
from conftest import CONTAINERS, make_dataset, read_json

from mlops_container import onnx_export, preprocess, train
from mlops_container.hyperparameters import decode, parse
from mlops_container.models import build_model, load_model

FAST = {"epochs": "2", "batch_size": "16", "backbone": '"resnet18"'}
EPOCH_LINE = re.compile(
    r"^epoch=\d+/\d+ train_loss=\d+\.\d{4} train_accuracy=\d\.\d{4} val_loss=\d+\.\d{4} "
    r"val_accuracy=\d\.\d{4} images_per_sec=\d+\.\d$"
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Preprocessed tiny dataset (3 classes, 8x8 -> 8 px), shared by the module's tests."""
    root = tmp_path_factory.mktemp("train-data")
    make_dataset(root / "ds", per_class=16)
    assert (
        preprocess.main(
            [
                "--input-dir",
                str(root / "ds"),
                "--output-dir",
                str(root / "out"),
                "--image-size",
                "8",
                "--val-fraction",
                "0.25",
                "--test-fraction",
                "0.25",
            ]
        )
        == 0
    )
    return root / "out"


def setup_job(base: Path, prepared: Path, hyperparameters: dict) -> None:
    """Lay out a SageMaker training job under the base dir."""
    (base / "input/config").mkdir(parents=True, exist_ok=True)
    (base / "input/config/hyperparameters.json").write_text(json.dumps(hyperparameters))
    for channel in ("train", "validation"):
        link = base / "input/data" / channel
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(prepared / channel)


def test_trains_and_writes_self_contained_artifact(base_dir: Path, prepared: Path, capsys) -> None:
    setup_job(base_dir, prepared, FAST)
    assert train.main([]) == 0
    out = capsys.readouterr().out
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch=")]
    assert [line.split()[0] for line in epoch_lines] == ["epoch=1/2", "epoch=2/2"]
    assert all(EPOCH_LINE.match(line) for line in epoch_lines), epoch_lines
    assert re.search(r"^final val_accuracy=\d\.\d{4} val_loss=\d+\.\d{4}$", out, re.M)
    for definition in train.METRIC_DEFINITIONS:
        assert re.findall(definition["Regex"], out), definition
    metrics = read_json(base_dir / "output/data/metrics.json")
    assert set(metrics) == {
        "val_accuracy",
        "val_loss",
        "train_loss",
        "train_accuracy",
        "best_epoch",
        "epochs",
        "images_per_sec",
        "train_seconds",
    }
    history = read_json(base_dir / "output/data/history.json")
    assert [h["epoch"] for h in history] == [1, 2]
    assert max(h["val_accuracy"] for h in history) == metrics["val_accuracy"]
    meta = read_json(base_dir / "model/model.json")
    assert meta["classes"] == ["c0", "c1", "c2"] and meta["image_size"] == 8
    assert meta["architecture"] == "resnet18" and meta["input"] == "RGB float 0..1 NCHW"
    assert meta["framework"] == {"torch": torch.__version__, "torchvision": torchvision.__version__}
    model, loaded = load_model(base_dir / "model")
    assert not model.training and loaded["metrics"]["best_epoch"] == metrics["best_epoch"]
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 3)
    # model.onnx answers like model.pt for any batch size, and the check is recorded.
    assert meta["onnx"]["checked_images"] > 0 and meta["onnx"]["max_abs_diff"] < 1e-3
    assert "exported model.onnx: max |torch - onnxruntime|" in out
    session = onnxruntime.InferenceSession(str(base_dir / "model/model.onnx"))
    for batch in (1, 5):
        inputs = torch.rand(batch, 3, 8, 8)
        with torch.inference_mode():
            expected = model(inputs).numpy()
        assert abs(session.run(None, {"input": inputs.numpy()})[0] - expected).max() < 1e-4


def test_failed_onnx_check_fails_the_job_with_the_reason(
    base_dir: Path, prepared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_job(base_dir, prepared, {**FAST, "epochs": "1"})
    monkeypatch.setattr(onnx_export, "TOLERANCE", -1.0)  # no export can pass
    assert train.main([]) == 1
    reason = (base_dir / "output/failure").read_text()
    assert "the ONNX model differs from PyTorch by" in reason
    assert not (base_dir / "model/model.onnx").exists()


def test_failed_onnx_export_fails_the_job_with_the_reason(
    base_dir: Path, prepared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_job(base_dir, prepared, {**FAST, "epochs": "1"})

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unsupported operator aten::magic")

    monkeypatch.setattr(torch.onnx, "export", broken)
    assert train.main([]) == 1
    reason = (base_dir / "output/failure").read_text()
    assert "exporting the model to ONNX failed: unsupported operator aten::magic" in reason


def test_metric_definitions_cover_the_tuner_metrics() -> None:
    names = {d["Name"] for d in train.METRIC_DEFINITIONS}
    assert names == {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "images_per_sec"}
    line = train.format_metrics(
        3,
        10,
        {
            "train_loss": 0.1234,
            "train_accuracy": 0.9612,
            "val_loss": 0.15,
            "val_accuracy": 0.955,
            "images_per_sec": 812.3,
        },
    )
    assert line == (
        "epoch=3/10 train_loss=0.1234 train_accuracy=0.9612 val_loss=0.1500 "
        "val_accuracy=0.9550 images_per_sec=812.3"
    )
    values = {
        d["Name"]: float(re.search(d["Regex"], line).group(1)) for d in train.METRIC_DEFINITIONS
    }
    assert values["val_accuracy"] == 0.955 and values["images_per_sec"] == 812.3


@pytest.mark.parametrize(
    ("hyperparameters", "expected"),
    [
        (
            {"optimizer": "rmsprop"},
            "optimizer='rmsprop' is not allowed; allowed values: adamw, sgd",
        ),
        ({"epochs": "ten"}, "epochs='ten' must be an integer"),
        ({"epochs": "true"}, "epochs=True must be an integer"),
        ({"freeze_epochs": "5", "epochs": "2"}, "freeze_epochs=5 must be <= epochs=2"),
        ({"learning_rate": "-1"}, "learning_rate=-1 is out of range"),
        ({"backbone": '"vgg"'}, "allowed values: resnet18, mobilenet_v3_small"),
        ({"epochz": "3"}, "unknown hyperparameter 'epochz'"),
    ],
)
def test_bad_hyperparameter_fails_with_reason(
    base_dir: Path, prepared: Path, capsys, hyperparameters: dict, expected: str
) -> None:
    setup_job(base_dir, prepared, hyperparameters)
    assert train.main([]) == 2
    failure = (base_dir / "output/failure").read_text()
    assert expected in failure
    assert expected in capsys.readouterr().err


def test_hyperparameter_strings_are_decoded() -> None:
    assert decode("10") == 10 and decode("0.001") == 0.001 and decode('"resnet18"') == "resnet18"
    hp = parse(
        {
            "epochs": "3",
            "learning_rate": "1e-3",
            "backbone": "mobilenet_v3_small",
            "augment": '"none"',
            "sagemaker_program": "x",
            "_tuning_objective_metric": "y",
        }
    )
    assert (hp.epochs, hp.learning_rate, hp.backbone, hp.augment) == (
        3,
        0.001,
        "mobilenet_v3_small",
        "none",
    )


def test_missing_channel_is_a_user_error(base_dir: Path, capsys) -> None:
    assert train.main([]) == 2
    assert "no data.npz in the 'train' channel" in (base_dir / "output/failure").read_text()


def test_resume_runs_only_the_missing_epochs(base_dir: Path, prepared: Path, capsys) -> None:
    setup_job(base_dir, prepared, FAST)
    assert train.main([]) == 0
    capsys.readouterr()
    setup_job(base_dir, prepared, {**FAST, "epochs": "3"})
    assert train.main([]) == 0
    out = capsys.readouterr().out
    assert "resuming from checkpoint after epoch 2" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("epoch=")] == [
        "epoch=3/3"
    ]
    assert read_json(base_dir / "output/data/metrics.json")["epochs"] == 3


def test_same_seed_gives_identical_metrics(base_dir: Path, prepared: Path, tmp_path: Path) -> None:
    setup_job(base_dir, prepared, {**FAST, "backbone": "mobilenet_v3_small"})
    results = []
    for run in ("a", "b"):
        assert train.main(["--checkpoint-dir", str(tmp_path / run)]) == 0
        metrics = read_json(base_dir / "output/data/metrics.json")
        results.append(
            {k: v for k, v in metrics.items() if k not in ("images_per_sec", "train_seconds")}
        )
    assert results[0] == results[1]


def test_pretrained_channel_loads_torchvision_state_dict(
    base_dir: Path, prepared: Path, capsys
) -> None:
    setup_job(base_dir, prepared, {**FAST, "epochs": "1", "weights": "channel"})
    (base_dir / "input/data/pretrained").mkdir(parents=True)
    # A torchvision state dict with the 1000-class ImageNet head: only the head may differ.
    torch.save(
        torchvision.models.resnet18().state_dict(), base_dir / "input/data/pretrained/resnet18.pth"
    )
    assert train.main([]) == 0
    assert "loading pretrained weights" in capsys.readouterr().out


def test_pretrained_of_another_architecture_is_rejected(base_dir: Path, prepared: Path) -> None:
    setup_job(base_dir, prepared, {**FAST, "epochs": "1", "weights": "channel"})
    (base_dir / "input/data/pretrained").mkdir(parents=True)
    torch.save(
        torchvision.models.mobilenet_v3_small().state_dict(),
        base_dir / "input/data/pretrained/m.pt",
    )
    assert train.main([]) == 2
    assert "pretrained weights do not fit resnet18" in (base_dir / "output/failure").read_text()


def test_channel_weights_without_file_fails(base_dir: Path, prepared: Path) -> None:
    setup_job(base_dir, prepared, {**FAST, "weights": "channel"})
    assert train.main([]) == 2
    assert "weights=channel needs a state dict" in (base_dir / "output/failure").read_text()


def test_imagenet_weights_offline_names_the_fix(
    base_dir: Path, prepared: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no cached weights
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    # urlopen keeps the opener (and so the proxy) it first builds: drop it after the test.
    monkeypatch.setattr(urllib.request, "_opener", None)
    setup_job(base_dir, prepared, {**FAST, "weights": "imagenet"})
    assert train.main([]) == 2
    assert (
        "ImageNet weights for resnet18 could not be downloaded (offline?); pass a state-dict "
        "as the 'pretrained' channel or use weights=none"
    ) in (base_dir / "output/failure").read_text()


def test_killed_job_resumes_to_exactly_the_requested_epochs(
    base_dir: Path, tmp_path: Path, capsys
) -> None:
    # Enough data that an epoch takes a while, so the kill lands mid-run.
    root = tmp_path / "big"
    make_dataset(root / "ds", per_class=80, size=16)
    assert (
        preprocess.main(
            [
                "--input-dir",
                str(root / "ds"),
                "--output-dir",
                str(root / "out"),
                "--image-size",
                "16",
            ]
        )
        == 0
    )
    setup_job(base_dir, root / "out", {"epochs": "3", "batch_size": "32"})
    env = {**os.environ, "PYTHONPATH": str(CONTAINERS)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops_container.train"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = base_dir / "checkpoints" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.kill()
    process.wait(timeout=30)
    assert checkpoint.exists(), "no checkpoint was written before the deadline"
    assert not (base_dir / "model/model.json").exists(), "the job finished before the kill"
    capsys.readouterr()
    assert train.main([]) == 0
    out = capsys.readouterr().out
    ran = [line.split()[0] for line in out.splitlines() if line.startswith("epoch=")]
    assert ran and ran[-1] == "epoch=3/3" and "epoch=1/3" not in ran
    assert read_json(base_dir / "output/data/metrics.json")["epochs"] == 3


def test_freeze_epochs_train_only_the_head(base_dir: Path, prepared: Path) -> None:
    setup_job(base_dir, prepared, {**FAST, "epochs": "1", "freeze_epochs": "1"})
    assert train.main([]) == 0
    trained = torch.load(base_dir / "model/model.pt", weights_only=True)
    torch.manual_seed(42)  # the job seeds torch with `seed` before building the model
    initial = build_model("resnet18", 3, 8, [0.0] * 3, [1.0] * 3).state_dict()
    assert torch.equal(trained["backbone.conv1.weight"], initial["backbone.conv1.weight"])
    assert not torch.equal(trained["backbone.fc.weight"], initial["backbone.fc.weight"])


class Interrupted(Exception):
    """Stands in for a kill between two epochs."""


def test_job_stopped_after_a_checkpoint_resumes_to_the_same_model(
    base_dir: Path, prepared: Path, tmp_path: Path, monkeypatch
) -> None:
    hps = {**FAST, "epochs": "3", "backbone": "mobilenet_v3_small"}
    setup_job(base_dir, prepared, hps)
    assert train.main(["--checkpoint-dir", str(tmp_path / "straight")]) == 0
    straight = read_json(base_dir / "output/data/history.json")
    straight_weights = torch.load(base_dir / "model/model.pt", weights_only=True)

    real_run_epoch, calls = train.run_epoch, []

    def stop_at_third_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Interrupted
        return real_run_epoch(*args, **kwargs)

    monkeypatch.setattr(train, "run_epoch", stop_at_third_epoch)
    assert train.main(["--checkpoint-dir", str(tmp_path / "stopped")]) != 0
    monkeypatch.setattr(train, "run_epoch", real_run_epoch)
    assert train.main(["--checkpoint-dir", str(tmp_path / "stopped")]) == 0

    def same_work(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in h.items() if k != "images_per_sec"} for h in history]

    assert same_work(read_json(base_dir / "output/data/history.json")) == same_work(straight)
    resumed_weights = torch.load(base_dir / "model/model.pt", weights_only=True)
    assert all(torch.equal(resumed_weights[k], v) for k, v in straight_weights.items())


def test_unwritable_checkpoint_dir_fails_the_job_with_the_fix(
    base_dir: Path, prepared: Path, tmp_path: Path
) -> None:
    setup_job(base_dir, prepared, {**FAST, "epochs": "1"})
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the checkpoint directory should be")
    assert train.main(["--checkpoint-dir", str(blocker)]) == 2
    reason = (base_dir / "output/failure").read_text()
    assert f"writing the checkpoint to {blocker} failed" in reason
    assert "MLOPS_CHECKPOINT_DIR" in reason
