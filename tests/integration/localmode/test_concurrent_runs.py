"""Two runs started together share the machine's cores: both succeed, with distinct versions, and
their jobs never run at the same time (read from the core budget's own log)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

RUN = """
import json, sys
from pathlib import Path
import boto3
import localmode_graphs as graphs
from local_mlops.targets.localmode import ExtendedLocalPipelineSession
from local_mlops.targets.localmode.cores import CoreBudget

url, bucket, image, cores = sys.argv[1:5]
waits = []
session = ExtendedLocalPipelineSession(
    boto_session=boto3.Session(aws_access_key_id="a", aws_secret_access_key="b",
                               region_name="us-east-1"),
    s3_endpoint_url=url, default_bucket=bucket, cache_enabled=False,
    core_budget=CoreBudget(Path(cores), 2),
    on_step_event=lambda _id, step, status, rec: status == "Waiting" and waits.append(rec["Waiting"]),
)
pipeline = graphs.train_evaluate_register(session, image, bucket, train_seconds=3)
pipeline.upsert(role_arn=graphs.ROLE)
execution = pipeline.start()
steps = {s["StepName"]: s for s in execution.list_steps()["PipelineExecutionSteps"]}
print(json.dumps({
    "status": execution.describe()["PipelineExecutionStatus"],
    "execution": execution.pipeline_execution_name,
    "package": steps["Register-RegisterModel"]["Metadata"]["RegisterModel"]["Arn"],
    "waits": waits,
}))
"""


def test_two_concurrent_runs_take_turns_on_the_cores(
    tiny_image: str, moto_url: str, bucket: str, tmp_path: Path
) -> None:
    cores = tmp_path / "cores"
    here = Path(__file__).resolve()
    path = [str(here.parent), str(here.parents[3]), os.environ.get("PYTHONPATH", "")]
    env_path = os.pathsep.join(p for p in path if p)
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", RUN, moto_url, bucket, tiny_image, str(cores)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": env_path},
        )
        for _ in range(2)
    ]
    results = [json.loads(run.communicate(timeout=600)[0].strip().splitlines()[-1]) for run in runs]

    assert [r["status"] for r in results] == ["Succeeded", "Succeeded"]
    versions = sorted(int(r["package"].rsplit("/", 1)[-1]) for r in results)
    assert versions == [1, 2]
    # Somebody queued, and was told who held the cores.
    waits = [w for r in results for w in r["waits"]]
    ids = {r["execution"] for r in results}
    assert any(f"waiting for cores (run {i} holds them)" in waits for i in ids), waits

    log = [json.loads(line) for line in (cores / "log.jsonl").read_text().splitlines()]
    spans: dict[tuple[int, str], list[float]] = {}
    for entry in log:
        spans.setdefault((entry["pid"], entry["job"]), []).append(entry["t"])
    intervals = sorted(tuple(times) for times in spans.values())
    assert len(intervals) == 2 * 3  # Train, Evaluate and UseArn are jobs; CreateModel is not
    for (_, end), (next_start, _) in zip(intervals, intervals[1:], strict=False):
        assert end <= next_start, intervals
