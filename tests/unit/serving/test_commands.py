"""The endpoint commands' errors a user meets before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from local_mlops.cli.app import app

runner = CliRunner()


def test_endpoints_list_is_empty_json_without_endpoints() -> None:
    result = runner.invoke(app, ["endpoints", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_describing_a_missing_endpoint_names_the_fix() -> None:
    result = runner.invoke(app, ["endpoints", "describe", "nothing-here"])
    assert result.exit_code == 1
    assert "no local endpoint named 'nothing-here'" in result.stderr
    assert "local-mlops deploy" in result.stderr


def test_predict_without_a_router_says_how_to_start_it(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from serving_fakes import free_port

    monkeypatch.setenv("LOCAL_MLOPS_ROUTER_PORT", str(free_port()))
    image = tmp_path / "x.png"
    image.write_bytes(b"\x89PNG")
    result = runner.invoke(app, ["predict", str(image)])
    assert result.exit_code == 1
    assert "router does not answer" in result.stderr and "local-mlops up" in result.stderr


def test_predict_refuses_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["predict", str(tmp_path / "missing.png")])
    assert result.exit_code == 1
    assert "is not a file" in result.stderr


def test_bad_deploy_options_are_refused_before_anything_starts() -> None:
    result = runner.invoke(app, ["deploy", "--traffic", "canary", "--step-percent", "0"])
    assert result.exit_code == 1
    assert "out of range" in result.stderr
