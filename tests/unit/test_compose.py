"""Compose detection: SDK v2 only accepts `docker compose` output containing "v2"."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from local_mlops.devenv import dockerhost

V1 = "docker-compose version 1.29.2, build unknown"
V2 = "Docker Compose version v2.27.0"
V2_DISTRO = "Docker Compose version 2.20.2+ds1-0ubuntu1"
V5 = "Docker Compose version v5.0.1"


@pytest.mark.parametrize(
    ("text", "version", "sdk_accepts"),
    [
        (V1, "1.29.2", False),
        (V2, "2.27.0", True),
        (V2_DISTRO, "2.20.2", False),
        (V5, "5.0.1", False),
    ],
)
def test_version_parsing_and_the_sdks_verdict(text: str, version: str, sdk_accepts: bool) -> None:
    assert dockerhost.parse_compose_version(text) == version
    assert dockerhost.sdk_accepts_plugin_output(text) is sdk_accepts


def fake_docker(folder: Path, compose_output: str) -> None:
    """A `docker` that answers `compose version` like a compose plugin and logs other calls."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" = "compose version" ]; then echo "{compose_output}"; exit 0; fi\n'
        f'echo "$@" >> "{folder}/calls.log"\n'
    )
    script.chmod(0o755)


@pytest.mark.parametrize("output", [V5, V2_DISTRO])
def test_rejected_plugin_gets_a_shim_the_sdk_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    bin_dir, shim_dir = tmp_path / "bin", tmp_path / "shim"
    fake_docker(bin_dir, output)
    monkeypatch.setenv("PATH", str(bin_dir))

    info = dockerhost.ensure_sdk_compose(shim_dir)

    assert info.flavour == "plugin" and info.needs_shim
    from sagemaker.local.image import _SageMakerContainer

    assert _SageMakerContainer._get_compose_cmd_prefix() == ["docker-compose"]
    subprocess.run(["docker-compose", "-f", "x.yaml", "up"], check=True)
    assert (bin_dir / "calls.log").read_text().strip() == "compose -f x.yaml up"


def test_accepted_plugin_needs_no_shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    fake_docker(bin_dir, V2)
    monkeypatch.setenv("PATH", str(bin_dir))
    info = dockerhost.ensure_sdk_compose(tmp_path / "shim")
    assert not info.needs_shim
    assert not (tmp_path / "shim" / "docker-compose").exists()


def test_no_compose_at_all_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(dockerhost.LocalMlopsError, match="Docker Compose is not installed"):
        dockerhost.ensure_sdk_compose(tmp_path / "shim")


def test_the_answer_is_remembered_until_what_is_installed_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, shim_dir = tmp_path / "bin", tmp_path / "shim"
    fake_docker(bin_dir, V2)
    monkeypatch.setenv("PATH", str(bin_dir))
    asked: list[list[str]] = []
    real_run = dockerhost._run

    def counting_run(argv: list[str]) -> tuple[int, str]:
        asked.append(argv)
        return real_run(argv)

    monkeypatch.setattr(dockerhost, "_run", counting_run)
    first = dockerhost.ensure_sdk_compose(shim_dir)
    assert dockerhost.ensure_sdk_compose(shim_dir) == first and len(asked) == 1
    # the plugin is replaced by one the SDK rejects: the next command sees it and adds the shim
    fake_docker(bin_dir, V5)
    (bin_dir / "docker").write_text((bin_dir / "docker").read_text() + "# v5\n")
    again = dockerhost.ensure_sdk_compose(shim_dir)
    assert len(asked) == 2 and again.version == "5.0.1" and again.needs_shim
