"""Local training jobs with several hosts: cores split between the containers, logs ordered."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from local_mlops.targets.localmode import jobs
from local_mlops.targets.localmode.cores import CoreBudget
from local_mlops.targets.localmode.outcomes import JobOutcome


class FakeContainer:
    def __init__(self, instance_type: str, count: int, image: str, **kwargs: Any) -> None:
        self.count, self.container_root = count, "/tmp/job"


class FakeJob:
    seen: list[dict[str, str]] = []

    def __init__(self, container: FakeContainer) -> None:
        self.container = container

    def start(self, inputs: Any, output: Any, hps: Any, environment: dict, name: str) -> None:
        FakeJob.seen.append(environment)


@pytest.mark.parametrize("hosts", [1, 2])
def test_a_job_holds_its_cores_once_and_splits_them_between_its_hosts(
    hosts: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "JobContainer", FakeContainer)
    monkeypatch.setattr(jobs, "_LocalTrainingJob", FakeJob)
    monkeypatch.setattr(jobs, "inspect_job_containers", lambda outcome: None)
    budget = CoreBudget(tmp_path / "cores", total=2)
    session = SimpleNamespace(core_budget=budget, config={})
    client = jobs.ExtendedLocalSagemakerClient.__new__(jobs.ExtendedLocalSagemakerClient)
    jobs.ExtendedLocalSagemakerClient.__init__(client, session)
    FakeJob.seen.clear()
    client.create_training_job(
        "job-1",
        {"TrainingImage": "image:tag"},
        {"S3OutputPath": ""},
        {"InstanceType": "local", "InstanceCount": hosts},
        Environment={"OTHER": "1"},
    )
    cores = budget.cores_for(1)
    assert FakeJob.seen == [{"SM_NUM_CPUS": str(max(1, cores // hosts)), "OTHER": "1"}]
    claims = [e for e in budget.log() if e["event"] == "claim"]
    assert [(c["job"], c["cores"]) for c in claims] == [("job-1", cores)]
    assert cores == min(2, os.cpu_count() or 1)


class FakeJobContainer:
    """What the docker SDK gives for a finished job container."""

    def __init__(self, short_id: str, exit_code: int, log: str) -> None:
        self.short_id = short_id
        self.attrs = {"State": {"ExitCode": exit_code, "OOMKilled": False}}
        self._log = log

    def logs(self) -> bytes:
        return self._log.encode()


def test_the_host_that_said_why_it_failed_ends_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """algo-2 was killed (137) mid-epoch, algo-1 then failed with the reason (exit 2)."""
    found = [
        FakeJobContainer("c1", 2, "epoch=1/40\r\nerror: lost a peer while training\n"),
        FakeJobContainer("c2", 137, "rank 1 of 2\n"),
    ]
    monkeypatch.setattr(jobs, "job_containers", lambda root: found if root == "/tmp/job" else [])
    outcome = JobOutcome("job-1", "/tmp/job")
    assert jobs.inspect_job_containers(outcome) == found
    assert outcome.log_tail[-1] == "error: lost a peer while training"
    assert outcome.exit_code == 137  # a lost instance: the step's retry policy may try again
    assert outcome.container_ids == ["c1", "c2"]


def test_a_failed_job_says_the_reason_its_host_wrote_in_one_line(tmp_path: Path) -> None:
    """The SDK deletes the hosts' folders as the job ends: the reason is read before."""
    root = tmp_path / "job"
    reason = "lost a peer while training: host algo-1-ab12c (rank 0 of 2) got RuntimeError"
    for host, text in [("algo-1-ab12c", f"{reason}\nmore detail\n"), ("algo-2-ab12c", "")]:
        (root / host / "output").mkdir(parents=True)
        (root / host / "output/failure").write_text(text)
    container = jobs.JobContainer.__new__(jobs.JobContainer)
    container.container_root, container.hosts = str(root), ["algo-1-ab12c", "algo-2-ab12c"]
    container._cleanup([])
    assert not (root / "algo-1-ab12c").exists()  # the SDK's cleanup still ran
    assert jobs.job_reason(container) == reason
    client = jobs.ExtendedLocalSagemakerClient.__new__(jobs.ExtendedLocalSagemakerClient)
    outcome = JobOutcome("job-1", str(root), exit_code=137, log="epoch=1/40\n")
    with pytest.raises(jobs.JobFailedError) as raised:
        client._raise_failed(outcome, RuntimeError("Failed to run"), jobs.job_reason(container))
    assert str(raised.value) == f"{reason} (container exit code 137)"
    # Hosts that disagree are each named; no reason written: the SDK's error and the log tail.
    container.failure_reasons = {"algo-1": "bad data", "algo-2": "other"}
    assert jobs.job_reason(container) == "algo-1: bad data; algo-2: other"
    with pytest.raises(jobs.JobFailedError, match="Failed to run.*\nLast log lines:\nepoch=1"):
        client._raise_failed(outcome, RuntimeError("Failed to run"), "")


@pytest.mark.parametrize("isolated", [True, False])
def test_a_training_job_asking_for_network_isolation_gets_it(
    isolated: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[FakeContainer] = []

    class Recorded(FakeContainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(jobs, "JobContainer", Recorded)
    monkeypatch.setattr(jobs, "_LocalTrainingJob", FakeJob)
    monkeypatch.setattr(jobs, "inspect_job_containers", lambda outcome: [])
    client = jobs.ExtendedLocalSagemakerClient.__new__(jobs.ExtendedLocalSagemakerClient)
    jobs.ExtendedLocalSagemakerClient.__init__(client, SimpleNamespace(config={}))
    extra = {"EnableNetworkIsolation": True} if isolated else {}
    client.create_training_job(
        "job-1",
        {"TrainingImage": "image:tag"},
        {"S3OutputPath": ""},
        {"InstanceType": "local", "InstanceCount": 1},
        **extra,
    )
    assert [c.network_isolation for c in made] == [isolated]  # type: ignore[attr-defined]
