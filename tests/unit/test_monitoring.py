"""The orchestration side of monitoring: shifted traffic, windows, which package and baseline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from local_mlops.cli.app import app
from local_mlops.errors import LocalMlopsError
from local_mlops.monitoring import run, shifts
from local_mlops.serving.captured import parse_window

RNG = np.random.default_rng


def digits_like(count: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Dark images with a bright bar (like digits: strokes on black), labels 0..3."""
    images = np.zeros((count, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(count) % 4
    for index, label in enumerate(labels):
        images[index, 4:28, 6 + 6 * label : 10 + 6 * label] = 220
    return images, labels


def sharpness(image: np.ndarray) -> float:
    gray = image.mean(axis=2)
    return float(np.var(np.diff(gray, axis=0)) + np.var(np.diff(gray, axis=1)))


def test_each_shift_moves_the_images_the_documented_way() -> None:
    images, labels = digits_like()
    image = images[0]

    def shifted(kind: str) -> np.ndarray:
        return shifts.shift_image(image, kind, shifts.SHIFTS[kind][0], RNG(0))

    assert shifted("brightness").mean() == pytest.approx(image.mean() + 25.5, abs=1.0)
    assert shifted("contrast").std() == pytest.approx(image.std() * 0.7, rel=0.02)
    assert 0 < np.abs(shifted("noise").astype(int) - image).mean() < 20
    assert sharpness(shifted("blur")) < 0.8 * sharpness(image)
    rotated = shifted("rotate")
    assert rotated.shape == image.shape and not np.array_equal(rotated, image)
    sample, sampled_labels = shifts.shifted_sample(images, labels, 400, "class-shift", None, RNG(1))
    assert 0.38 < np.mean(sampled_labels == 0) < 0.55  # 30% + a quarter of the rest
    assert np.array_equal(sample[sampled_labels == 0][0], images[0])


def test_unknown_shift_and_bad_strength_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown shift 'fog'; choose one of brightness"):
        shifts.check_shift("fog", None)
    with pytest.raises(ValueError, match="--strength for noise must be in"):
        shifts.check_shift("noise", 3.0)
    assert shifts.check_shift("rotate", None) == 20.0


def test_windows_parse_and_bad_ones_name_the_fix() -> None:
    assert parse_window("90m") == timedelta(minutes=90)
    assert parse_window("1h") == timedelta(hours=1)
    assert parse_window("7d") == timedelta(days=7)
    with pytest.raises(LocalMlopsError, match="--every 'an hour' is not a duration"):
        parse_window("an hour", "--every")


def package(version: int, status: str, baselines: bool = True) -> dict:
    drift = {"ModelDataQuality": {"Statistics": {"S3Uri": f"s3://b/p/{version}/statistics.json"}}}
    return {
        "ModelPackageVersion": version,
        "ModelApprovalStatus": status,
        "DriftCheckBaselines": drift if baselines else {},
        "InferenceSpecification": {"Containers": [{"ModelDataUrl": f"s3://b/m{version}.tar.gz"}]},
    }


def test_the_monitored_version_defaults_to_the_newest_approved_one() -> None:
    packages = [package(1, "Approved"), package(2, "Approved"), package(3, "PendingManualApproval")]
    assert run.pick_package(packages, None)["ModelPackageVersion"] == 2
    assert run.pick_package(packages[2:], None)["ModelPackageVersion"] == 3
    assert run.pick_package(packages, 1)["ModelPackageVersion"] == 1
    assert run.baseline_folder(packages[0]) == "s3://b/p/1/"
    assert run.model_data(packages[0]) == "s3://b/m1.tar.gz"
    with pytest.raises(LocalMlopsError, match="model version 9 does not exist"):
        run.pick_package(packages, 9)
    with pytest.raises(LocalMlopsError, match="no model versions"):
        run.pick_package([], None)
    with pytest.raises(
        LocalMlopsError, match="registered before the pipeline wrote drift-check baselines"
    ):
        run.baseline_folder(package(4, "Approved", baselines=False))


def test_monitor_run_with_a_bad_window_is_one_red_line() -> None:
    result = CliRunner().invoke(app, ["monitor", "run", "--window", "soon"])
    assert result.exit_code == 1
    assert "--window 'soon' is not a duration" in result.output


def test_the_window_holds_a_request_captured_in_the_same_second() -> None:
    """`traffic` then `monitor run` within the second (the first report does so): the window's
    end is whole seconds, and `inferenceTime < end` must still hold for that request."""
    captured = datetime(2026, 12, 2, 5, 16, 50, 200_000, tzinfo=UTC)
    start, end = run.window_bounds(captured + timedelta(milliseconds=300), timedelta(hours=1))
    assert start <= captured < end
    assert (end.microsecond, end - start) == (0, timedelta(hours=1))
    on_the_second = datetime(2026, 12, 2, 6, 0, 0, tzinfo=UTC)
    assert run.window_bounds(on_the_second, timedelta(hours=1))[1] == on_the_second
