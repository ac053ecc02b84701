"""The product's graph end to end in Docker on digits: register, cache, fail gate."""

from __future__ import annotations

import json
import pickle
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from local_mlops.cli.app import app
from local_mlops.config import Settings, load_settings
from local_mlops.devenv import dockerhost
from local_mlops.pipeline import graph, runner
from local_mlops.s3 import s3_client
from local_mlops.serving import daemon
from local_mlops.serving.fleet import ENDPOINT_LABEL, free_port

pytestmark = pytest.mark.docker


def statuses(result: runner.RunResult) -> dict[str, str]:
    return {s["StepName"]: s["StepStatus"] for s in result.steps}


def test_digits_learns_registers_then_reruns_from_cache_and_fails_the_gate(
    digits_runs: Any,
) -> None:
    first, second = digits_runs.first, digits_runs.second

    assert first.succeeded, first.failure_reason
    done = statuses(first)
    for step in (graph.VALIDATE, graph.PREPROCESS, graph.TRAIN, graph.EVALUATE):
        assert done[step] == "Succeeded"
    # The default job learns the digits: what the README promises (0.99 measured).
    assert first.metrics["accuracy"] >= 0.95
    assert first.model_package is not None
    assert first.model_package["ModelPackageVersion"] == 1
    assert first.model_package["ModelApprovalStatus"] == "PendingManualApproval"
    assert first.evaluation_uri.endswith("/evaluation.json")
    baselines = first.model_package["DriftCheckBaselines"]
    statistics = baselines["ModelDataQuality"]["Statistics"]["S3Uri"]
    bucket, _, key = statistics.removeprefix("s3://").partition("/")
    client = s3_client(digits_runs.settings, digits_runs.url)
    stored = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert {f["name"] for f in stored["features"]} >= {"brightness", "confidence", "prediction"}

    assert second.status == "Failed"
    assert "below the threshold 0.99" in second.failure_reason
    cached = {s["StepName"] for s in second.steps if s.get("CacheHitResult")}
    assert {graph.VALIDATE, graph.PREPROCESS} <= cached
    # new epochs: trained, scored and baselined anew
    assert not {graph.TRAIN, graph.EVALUATE} & cached
    assert second.seconds < first.seconds
    assert second.metrics["accuracy"] < 0.99
    assert second.model_package is None


def test_runs_and_models_commands_show_what_the_runs_left(
    digits_runs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The history of the digits runs, read back through the CLI."""
    settings = digits_runs.settings
    monkeypatch.setenv("LOCAL_MLOPS_S3_ENDPOINT", digits_runs.url)
    monkeypatch.setenv("LOCAL_MLOPS_BUCKET", settings.bucket)
    monkeypatch.setenv("LOCAL_MLOPS_MODEL_PACKAGE_GROUP", settings.model_package_group)
    cli = CliRunner()

    runs = json.loads(cli.invoke(app, ["runs", "list", "--json"]).stdout)
    by_id = {r["ExecutionId"]: r["Status"] for r in runs}
    first_id = digits_runs.first.execution_arn.rsplit("/", 1)[-1]
    second_id = digits_runs.second.execution_arn.rsplit("/", 1)[-1]
    assert (by_id[first_id], by_id[second_id]) == ("Succeeded", "Failed")
    described = json.loads(cli.invoke(app, ["runs", "describe", first_id, "--json"]).stdout)
    assert [s["StepName"] for s in described["Steps"]][:2] == [graph.VALIDATE, graph.PREPROCESS]

    models = json.loads(cli.invoke(app, ["models", "list", "--json"]).stdout)
    assert [m["ModelPackageVersion"] for m in models] == [1]
    assert models[0]["Metrics"]["accuracy"] == digits_runs.first.metrics["accuracy"]
    arn = models[0]["ModelPackageArn"]
    assert json.loads(cli.invoke(app, ["models", "describe", arn]).stdout)["ModelPackageArn"] == arn
    # the version alone, as `models approve` takes it
    assert json.loads(cli.invoke(app, ["models", "describe", "1"]).stdout)["ModelPackageArn"] == arn


def test_the_main_job_ends_deployed_with_a_first_report_then_drift_is_flagged(
    digits_runs: Any, serving_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's main job, `local-mlops run --json` (its steps served from the cache of the
    digits run): auto_approve deploys the new version and the run ends with a first monitoring
    report over its own burst of clean traffic (no violation); then `traffic --drift brightness`
    and `monitor run --json` flag brightness, with the reports in S3."""
    settings = digits_runs.settings
    env = {
        "LOCAL_MLOPS_S3_ENDPOINT": digits_runs.url,
        "LOCAL_MLOPS_BUCKET": settings.bucket,
        "LOCAL_MLOPS_MODEL_PACKAGE_GROUP": settings.model_package_group,
        "LOCAL_MLOPS_IMAGE_TAG": serving_image.rsplit(":", 1)[1],
        "LOCAL_MLOPS_ENDPOINT_NAME": "e2e-digits",
        "LOCAL_MLOPS_ROUTER_PORT": str(free_port()),
        "LOCAL_MLOPS_ENDPOINT_PING_TIMEOUT": "240",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cli = CliRunner()

    def invoke(*args: str) -> dict:
        result = cli.invoke(app, list(args))
        assert result.exit_code == 0, result.output[-3000:]
        return dict(json.loads(result.stdout))

    try:
        run = invoke("run", "--local", "--threshold", "0", "--json")
        assert run["succeeded"] and run["metrics"] == digits_runs.first.metrics
        version = run["model_package"]["ModelPackageVersion"]
        assert run["deployment"]["endpoint"]["name"] == "e2e-digits"
        assert run["deployment"]["endpoint"]["version"] == version
        assert run["deployment"]["sample_prediction"]["label"]
        first = run["first_report"]
        print(f"first_report took {first['seconds']} s")  # the cost it adds to the main job
        assert (first["traffic"]["sent"], first["traffic"]["ok"]) == (48, 48)
        assert first["traffic"]["test_split"].endswith("/Preprocess/output/test/data.npz")
        clean = first["report"]
        # the 48 and the sample prediction, every one of them in the window
        assert clean["records"] == 49 and clean["violations"] == [], clean["violations"]
        assert clean["report_uri"].startswith(f"s3://{settings.bucket}/monitoring/e2e-digits/")

        drifted = invoke("traffic", "--n", "200", "--seed", "2", "--drift", "brightness", "--json")
        assert drifted["ok"] == 200 and drifted["strength"] == 0.1
        report = invoke("monitor", "run", "--json")  # the hour: 49 clean, 200 brightened
        assert report["records"] == 249 and "brightness" in report["violated_features"]
        assert report["report_uri"].startswith(f"s3://{settings.bucket}/monitoring/e2e-digits/")
        prefix = report["report_uri"].removeprefix(f"s3://{settings.bucket}/")
        client = s3_client(settings, digits_runs.url)
        stored = client.list_objects_v2(Bucket=settings.bucket, Prefix=prefix)["Contents"]
        assert {o["Key"].rsplit("/", 1)[-1] for o in stored} == {
            "statistics.json",
            "constraint_violations.json",
            "summary.json",
        }
        body = client.get_object(Bucket=settings.bucket, Key=f"{prefix}constraint_violations.json")
        checks = {v["feature_name"]: v for v in json.loads(body["Body"].read())["violations"]}
        assert checks["brightness"]["constraint_check_type"] == "baseline_drift_check"
    finally:
        for container in dockerhost.docker_client().containers.list(
            all=True, filters={"label": f"{ENDPOINT_LABEL}=e2e-digits"}
        ):
            container.remove(force=True)
        daemon.stop_router(load_settings())


def write_tiny_cifar(path: Path, per_batch: int = 30) -> Path:
    """A CIFAR-10 python archive in the official layout (pickled dicts of 3072-byte rows)."""
    rng = np.random.default_rng(0)
    folder = path / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": per_batch}, handle)
    for batch in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        labels = [i % 10 for i in range(per_batch)]
        planes = np.zeros((per_batch, 3, 32, 32), dtype=np.uint8)
        for row, label in enumerate(labels):  # a learnable colour per class, plus noise
            planes[row] = (label * 25 + rng.integers(0, 20, (3, 32, 32))).astype(np.uint8)
        with (folder / batch).open("wb") as handle:
            pickle.dump({b"data": planes.reshape(per_batch, 3072), b"labels": labels}, handle)
    archive = path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return archive


def test_an_official_format_cifar_archive_imports_validates_and_trains(
    runtime_image: str, s3: tuple[Settings, str], tmp_path: Path
) -> None:
    base, url = s3
    archive = write_tiny_cifar(tmp_path)
    settings = replace(base, s3_endpoint=url, dataset="cifar10", backbone="mobilenet_v3_small")
    options = runner.RunOptions(
        data=str(archive),
        parameters={"Epochs": 1, "Backbone": "mobilenet_v3_small", "AccuracyThreshold": 0.0},
    )

    result = runner.run(settings, options, say=print)

    assert result.succeeded, result.failure_reason
    assert result.model_package is not None
    model_data = result.model_package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert model_data.startswith(f"s3://{settings.bucket}/")
    assert 0.0 <= result.metrics["accuracy"] <= 1.0


def test_tuning_on_digits_picks_the_best_of_three_trials(
    runtime_image: str, s3: tuple[Settings, str]
) -> None:
    base, url = s3
    settings = replace(base, s3_endpoint=url, backbone="mobilenet_v3_small")
    options = runner.RunOptions(
        tune=True,
        max_jobs=3,
        max_parallel_jobs=2,
        strategy="Random",
        parameters={"Epochs": 1, "Backbone": "mobilenet_v3_small", "AccuracyThreshold": 0.0},
    )

    result = runner.run(settings, options, say=print)

    assert result.succeeded, result.failure_reason
    assert statuses(result)[graph.TUNE] == "Succeeded"
    assert result.tuning is not None
    trials = result.tuning["Trials"]
    assert len(trials) == 3
    assert len({t["TrainingJobName"] for t in trials}) == 3
    best = result.tuning["BestTrainingJob"]
    assert best["Objective"] == max(t["Objective"] for t in trials)
    # The evaluated and registered model is the best trial's artifact.
    assert result.model_package is not None
    model_data = result.model_package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert best["TrainingJobName"] in model_data


def test_transfer_learning_from_a_state_dict_file(
    runtime_image: str, s3: tuple[Settings, str], tmp_path: Path
) -> None:
    import torch
    import torchvision

    state = tmp_path / "mobilenet-start.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), state)
    base, url = s3
    settings = replace(base, s3_endpoint=url, backbone="mobilenet_v3_small", weights=str(state))
    options = runner.RunOptions(
        parameters={"Epochs": 2, "Backbone": "mobilenet_v3_small", "AccuracyThreshold": 0.0}
    )

    result = runner.run(settings, options, say=print)

    assert result.succeeded, result.failure_reason
    train = next(s for s in result.steps if s["StepName"] == graph.TRAIN)
    assert not train.get("CacheHitResult"), "a new channel must not be served from the cache"
    assert result.model_package is not None
    model_data = result.model_package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    bucket, key = model_data[5:].split("/", 1)
    archive = tmp_path / "model.tar.gz"
    s3_client(settings, url).download_file(bucket, key, str(archive))
    with tarfile.open(archive) as tar:
        member = tar.extractfile("model.json")
        assert member is not None
        meta = json.load(member)
    assert meta["hyperparameters"]["weights"] == "channel"
    assert meta["hyperparameters"]["freeze_epochs"] == 1
