"""init writes the stack's names into local-mlops.toml and leaves everything else as it was."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from local_mlops.account import settings_file
from local_mlops.config import load_settings
from local_mlops.errors import LocalMlopsError

NAMES = {"role_arn": "arn:aws:iam::1:role/r", "bucket": "b-1"}


def test_replaces_and_appends_keeping_comments_and_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "local-mlops.toml"
    path.write_text('# team settings\nepochs = 8\nbucket = "old"  # was by hand\n\n')
    settings_file.update(path, NAMES)
    text = path.read_text()
    assert text.startswith("# team settings\nepochs = 8\n")
    assert tomllib.loads(text) == {"epochs": 8, **NAMES}
    settings = load_settings(config_file=path, environ={})
    assert (settings.bucket, settings.role_arn, settings.epochs) == ("b-1", NAMES["role_arn"], 8)


def test_writes_inside_a_local_mlops_table(tmp_path: Path) -> None:
    path = tmp_path / "local-mlops.toml"
    path.write_text('[local-mlops]\nepochs = 2\n\n[tool.other]\nbucket = "not ours"\n')
    settings_file.update(path, NAMES)
    data = tomllib.loads(path.read_text())
    assert data["local-mlops"] == {"epochs": 2, **NAMES}
    assert data["tool"]["other"] == {"bucket": "not ours"}


def test_creates_the_file_when_missing(tmp_path: Path) -> None:
    path = settings_file.target_file(None)
    assert path.name == "local-mlops.toml"
    new = tmp_path / "local-mlops.toml"
    settings_file.update(new, NAMES)
    assert tomllib.loads(new.read_text()) == NAMES


def test_a_broken_file_is_left_alone_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "local-mlops.toml"
    path.write_text("epochs = = 3\n")
    with pytest.raises(LocalMlopsError, match="cannot read"):
        settings_file.update(path, NAMES)
    assert path.read_text() == "epochs = = 3\n"
