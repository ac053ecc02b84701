"""The CLI as a user meets it: help everywhere, JSON on stdout, one red line per error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from local_mlops import __version__
from local_mlops.cli.app import app
from local_mlops.devenv import dockerhost

runner = CliRunner()


def all_command_paths() -> list[list[str]]:
    paths: list[list[str]] = []

    def walk(command: Any, prefix: list[str]) -> None:
        paths.append(prefix)
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            for name, sub in command.commands.items():
                walk(sub, [*prefix, name])

    walk(get_command(app), [])
    return paths


@pytest.mark.parametrize("path", all_command_paths(), ids=lambda p: " ".join(p) or "root")
def test_every_command_has_help_with_an_example(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert "local-mlops" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"local-mlops {__version__}"


def test_config_show_json_reports_value_and_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_MLOPS_BUCKET", "my-bucket")
    result = runner.invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["bucket"] == {"value": "my-bucket", "source": "env LOCAL_MLOPS_BUCKET"}
    assert data["target"]["source"] == "default"


def test_config_file_given_with_the_global_option(tmp_path: Path) -> None:
    config = tmp_path / "team.toml"
    config.write_text('bucket = "team-bucket"\n')
    result = runner.invoke(app, ["--config", str(config), "config", "show", "--json"])
    assert json.loads(result.stdout)["bucket"]["value"] == "team-bucket"


def test_error_is_one_red_line_with_the_fix_and_exit_1(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = runner.invoke(app, ["--config", str(missing), "config", "show"])
    assert result.exit_code == 1
    assert "error: config file" in result.output and "does not exist" in result.output
    assert "fix:" in result.output
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["--debug", "--config", str(tmp_path / "nope.toml"), "config", "show"]
    )
    assert result.exit_code == 1
    assert result.exception is not None and "does not exist" in str(result.exception)


def test_doctor_names_the_fix_when_docker_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    dockerhost.docker_client.cache_clear()
    try:
        result = runner.invoke(app, ["doctor", "--json"])
    finally:
        dockerhost.docker_client.cache_clear()
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["Docker engine"]["status"] == "fail"
    assert "dockerd" in checks["Docker engine"]["fix"]
    assert checks["Runtime image"]["status"] == "fail"
