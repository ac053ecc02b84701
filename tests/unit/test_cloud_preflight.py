"""The cost a `run --cloud` shows before it starts: every job the graph will run is priced."""

from __future__ import annotations

from pathlib import Path

from local_mlops.account import prices
from local_mlops.cli.cloud_preflight import estimate_cost
from local_mlops.config import Settings, load_settings
from local_mlops.pipeline import steps
from local_mlops.pipeline.runner import INSTANCE_COUNT, RunOptions


def _settings(tmp_path: Path, text: str = "") -> Settings:
    path = tmp_path / "local-mlops.toml"
    path.write_text(text)
    return load_settings(config_file=path, environ={})


def test_the_default_run_prices_each_processing_step_and_one_training_job(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    total, rows = estimate_cost(settings, RunOptions())
    what = [row[0] for row in rows]
    assert what == [f"{len(steps.PROCESSING)} processing steps", "1 training job(s)"]
    hourly = prices.table(settings.region).hourly
    processing = hourly("jobs", settings.processing_instance_type)
    training = hourly("jobs", settings.training_instance_type)
    assert processing and training
    # 5 minutes a processing step, 15 for training, at the instances' hourly prices.
    expected = (len(steps.PROCESSING) * 5 * processing + 15 * training) / 60
    assert round(total, 6) == round(expected, 6)


def test_more_training_instances_and_a_batch_input_cost_more(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 'transform_instance_type = "ml.c5.xlarge"\n')
    single, _ = estimate_cost(settings, RunOptions())
    options = RunOptions(parameters={INSTANCE_COUNT: 2}, batch_input="s3://b/in/")
    total, rows = estimate_cost(settings, options)
    by_what = {row[0]: row for row in rows}
    assert "1 training job(s) x 2 instances" in by_what
    transform = by_what["1 batch transform job (BatchScore)"]
    assert transform[1] == "ml.c5.xlarge" and transform[2] > 0
    # The training row doubles; the transform row is added on top.
    training = prices.table(settings.region).hourly("jobs", settings.training_instance_type)
    assert training
    assert round(total - single, 6) == round(training * 15 / 60 + transform[2], 6)
