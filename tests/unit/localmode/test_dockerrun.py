"""A one-host job runs with ``docker run`` built from the compose file the SDK writes; several
hosts, or anything it does not translate, keep compose."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sagemaker.local.image import _SageMakerContainer

from local_mlops.targets.localmode import dockerrun, jobs

IMAGE = "local-mlops/runtime:test"
LABELS = {"local-mlops.project": "p", "local-mlops.execution": "run-1"}


def _container(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hosts: int = 1,
    container_config: dict[str, Any] | None = None,
    **kwargs: Any,
) -> jobs.JobContainer:
    monkeypatch.setattr(_SageMakerContainer, "_get_compose_cmd_prefix", lambda: ["docker-compose"])
    monkeypatch.setattr(dockerrun, "ensure_network", lambda: None)
    monkeypatch.setattr(jobs, "ensure_network", lambda: None)
    creds = SimpleNamespace(access_key="AKIDEXAMPLE", secret_key="secret", token=None)
    session = SimpleNamespace(
        boto_session=SimpleNamespace(get_credentials=lambda: creds),
        config={"local": {"container_config": container_config or {"labels": LABELS}}},
    )
    container = jobs.JobContainer("local", hosts, IMAGE, sagemaker_session=session, **kwargs)
    container.container_root = str(tmp_path)
    return container


def _volumes(service: dict) -> list[str]:
    return list(service["volumes"])


def test_a_processing_job_is_the_same_container_as_compose_would_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = _container(
        tmp_path,
        monkeypatch,
        container_entrypoint=["python3", "/opt/ml/processing/code/monitor.py"],
        container_arguments=["--window", "3"],
    )
    compose = container._generate_compose_file(
        "process",
        additional_volumes=[],
        additional_env_vars={"SM_NUM_CPUS": "2", "QUOTED": "a b 'c'=d"},
    )
    ((host, service),) = compose["services"].items()
    argv = container._compose()

    assert argv[:4] == ["docker", "run", "--name", service["container_name"]]
    assert "--tty" in argv  # one ordered log of stdout and stderr, as compose gives it
    pairs = list(zip(argv, argv[1:], strict=False))
    labels = {value for flag, value in pairs if flag == "--label"}
    assert labels == {
        "local-mlops.project=p",
        "local-mlops.execution=run-1",
        f"{dockerrun.WORKING_DIR_LABEL}={tmp_path}",
    }
    assert ("--network", "sagemaker-local") in pairs and ("--network-alias", host) in pairs
    assert [v for flag, v in pairs if flag == "--volume"] == _volumes(service)
    # the environment is in a file only the user can read, line for line as compose has it
    env_file = tmp_path / dockerrun.ENV_FILE
    assert ("--env-file", str(env_file)) in pairs
    assert env_file.read_text().splitlines() == service["environment"]
    assert "AWS_SECRET_ACCESS_KEY=secret" in service["environment"]
    assert "secret" not in " ".join(argv)  # not on any process list
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
    # the entrypoint and its arguments, after the image
    assert argv[argv.index("--entrypoint") + 1] == "python3"
    assert argv[argv.index(IMAGE) :] == [
        IMAGE,
        "/opt/ml/processing/code/monitor.py",
        "--window",
        "3",
    ]


def test_a_training_job_runs_the_images_train_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = _container(tmp_path, monkeypatch)
    container._generate_compose_file("train", additional_volumes=[], additional_env_vars={})
    argv = container._compose()
    assert argv[0:2] == ["docker", "run"] and argv[-2:] == [IMAGE, "train"]
    assert "--entrypoint" not in argv


def test_several_hosts_keep_compose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    container = _container(tmp_path, monkeypatch, hosts=2)
    container._generate_compose_file("train", additional_volumes=[], additional_env_vars={})
    argv = container._compose()
    assert argv[0] == "docker-compose" and "--abort-on-container-exit" in argv


@pytest.mark.parametrize(
    ("container_config", "env"),
    [
        ({"labels": LABELS, "mem_limit": "2g"}, {}),  # a setting docker_run_command leaves alone
        ({"labels": LABELS}, {"MULTI": "line one\nline two"}),  # an env file has one a line
    ],
    ids=["untranslated-setting", "multiline-variable"],
)
def test_what_docker_run_would_drop_keeps_compose(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    container_config: dict[str, Any],
    env: dict[str, str],
) -> None:
    container = _container(tmp_path, monkeypatch, container_config=container_config)
    container._generate_compose_file("train", additional_volumes=[], additional_env_vars=env)
    assert container._compose()[0] == "docker-compose"
    assert not (tmp_path / dockerrun.ENV_FILE).exists()


def test_a_job_with_network_isolation_gets_no_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    container = _container(tmp_path, monkeypatch)
    monkeypatch.setattr(jobs, "ensure_network", lambda: made.append("sagemaker-local"))
    container.network_isolation = True
    container._generate_compose_file("process", additional_volumes=[], additional_env_vars={})
    argv = container._compose()
    pairs = list(zip(argv, argv[1:], strict=False))
    assert ("--network", "none") in pairs
    assert "--network-alias" not in argv and "sagemaker-local" not in argv
    assert made == []  # no network is made for it either
