"""Settings precedence: flag > env > file > default, and the sources reported for each."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_mlops.config import load_settings
from local_mlops.errors import LocalMlopsError


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "local-mlops.toml"
    path.write_text(text)
    return path


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    settings = load_settings(config_file=write_config(tmp_path, ""), environ={})
    assert settings.target == "local"
    assert settings.bucket == "local-mlops"
    assert settings.source_of("bucket") == "default"
    assert settings.image_uri == "local-mlops-runtime:0.1.0"


def test_file_overrides_default(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'bucket = "from-file"\nepochs = 3\n')
    settings = load_settings(config_file=path, environ={})
    assert settings.bucket == "from-file"
    assert settings.epochs == 3
    assert settings.source_of("bucket") == f"file {path}"


def test_env_overrides_file_and_flag_overrides_env(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'bucket = "from-file"\nregion = "eu-west-1"\n')
    env = {"LOCAL_MLOPS_BUCKET": "from-env", "AWS_REGION": "eu-central-1"}
    settings = load_settings(config_file=path, environ=env)
    assert (settings.bucket, settings.source_of("bucket")) == ("from-env", "env LOCAL_MLOPS_BUCKET")
    assert (settings.region, settings.source_of("region")) == ("eu-central-1", "env AWS_REGION")
    flagged = load_settings({"bucket": "from-flag"}, config_file=path, environ=env)
    assert (flagged.bucket, flagged.source_of("bucket")) == ("from-flag", "flag")


def test_project_env_wins_over_standard_aws_env(tmp_path: Path) -> None:
    env = {"LOCAL_MLOPS_REGION": "ap-south-1", "AWS_DEFAULT_REGION": "us-west-2"}
    settings = load_settings(config_file=write_config(tmp_path, ""), environ=env)
    assert settings.region == "ap-south-1"


def test_values_are_typed(tmp_path: Path) -> None:
    env = {"LOCAL_MLOPS_ACCURACY_THRESHOLD": "0.75", "LOCAL_MLOPS_EPOCHS": "4"}
    settings = load_settings(config_file=write_config(tmp_path, ""), environ=env)
    assert settings.accuracy_threshold == 0.75
    assert settings.epochs == 4


def test_bad_value_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(LocalMlopsError, match="epochs"):
        load_settings(
            config_file=write_config(tmp_path, ""), environ={"LOCAL_MLOPS_EPOCHS": "many"}
        )


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LocalMlopsError, match="unknown settings: bukcet"):
        load_settings(config_file=write_config(tmp_path, 'bukcet = "typo"\n'), environ={})


def test_broken_toml_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LocalMlopsError, match="cannot read"):
        load_settings(config_file=write_config(tmp_path, "bucket = \n"), environ={})


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(config_file=write_config(tmp_path, ""), environ={})
    with pytest.raises(AttributeError):
        settings.bucket = "x"  # type: ignore[misc]


def test_ecr_repository_changes_the_image_uri(tmp_path: Path) -> None:
    repo = "123456789012.dkr.ecr.us-east-1.amazonaws.com/local-mlops-runtime"
    settings = load_settings(
        {"image_repository": repo}, config_file=write_config(tmp_path, ""), environ={}
    )
    assert settings.image_uri == f"{repo}:0.1.0"


def test_auto_approve_is_on_for_local_and_off_for_cloud_unless_set(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    assert load_settings(config_file=path, environ={}).auto_approve is True
    cloud = load_settings({"target": "cloud"}, config_file=path, environ={})
    assert cloud.auto_approve is False
    assert "off for cloud" in cloud.source_of("auto_approve")
    forced = load_settings(
        {"target": "cloud"}, config_file=path, environ={"LOCAL_MLOPS_AUTO_APPROVE": "true"}
    )
    assert forced.auto_approve is True


def test_the_first_monitoring_report_is_on_unless_turned_off(tmp_path: Path) -> None:
    assert load_settings(config_file=write_config(tmp_path, ""), environ={}).first_report is True
    off = load_settings(config_file=write_config(tmp_path, "first_report = false"), environ={})
    assert off.first_report is False
    env = {"LOCAL_MLOPS_FIRST_REPORT": "0"}
    assert load_settings(config_file=write_config(tmp_path, ""), environ=env).first_report is False


def test_the_endpoint_image_is_one_setting(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    assert (
        load_settings(config_file=path, environ={}).endpoint_image_uri
        == "local-mlops-serving:0.1.0"
    )
    runtime = load_settings(
        {"endpoint_image": "local-mlops-runtime:0.1.0"}, config_file=path, environ={}
    )
    assert runtime.endpoint_image_uri == "local-mlops-runtime:0.1.0"


def test_an_unknown_traffic_shifting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LocalMlopsError, match="deployment_traffic"):
        load_settings(
            {"deployment_traffic": "sideways"}, config_file=write_config(tmp_path, ""), environ={}
        )
