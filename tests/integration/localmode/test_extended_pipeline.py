"""The extended local mode runs the product's graph shapes end to end on the tiny image."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from typing import Any

import localmode_graphs as graphs
import pytest

from local_mlops.stores.registry import LocalModelRegistry
from local_mlops.stores.runstore import RunStore

pytestmark = pytest.mark.docker


def _steps(execution: Any) -> dict[str, dict]:
    return {s["StepName"]: s for s in execution.list_steps()["PipelineExecutionSteps"]}


def _run(pipeline: Any, **parameters: Any) -> Any:
    pipeline.upsert(role_arn=graphs.ROLE)
    return pipeline.start(parameters=parameters or None)


def test_train_register_consumer_and_run_record(
    tiny_image: str, make_session: Any, bucket: str
) -> None:
    events: list[tuple[str, str]] = []
    session = make_session(
        on_step_event=lambda _id, step, status, _rec: events.append((step, status))
    )
    execution = _run(graphs.train_evaluate_register(session, tiny_image, bucket), Threshold=0.5)

    assert execution.describe()["PipelineExecutionStatus"] == "Succeeded"
    steps = _steps(execution)
    arn = steps["Register-RegisterModel"]["Metadata"]["RegisterModel"]["Arn"]
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:model-package/tiny-models/1"
    # The consumer got the resolved ARN.
    use_arn = execution.step_execution["UseArn"].properties
    assert use_arn["Environment"]["MODEL_PACKAGE_ARN"] == arn
    package = session.registry.describe(arn)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["Metrics"] == {"accuracy": 1.0} or package["Metrics"]["accuracy"] == 0.9
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"].endswith(
        "output/model.tar.gz"
    )
    assert package["InferenceSpecification"]["SupportedContentTypes"] == ["application/x-image"]
    assert package["PipelineExecutionArn"].endswith(execution.pipeline_execution_name)
    assert ("Train", "Executing") in events and ("Register-RegisterModel", "Succeeded") in events

    record = RunStore(session.s3_client, bucket).get(execution.pipeline_execution_name)
    assert record["Status"] == "Succeeded"
    assert {s["StepName"] for s in record["Steps"]} >= {"Train", "Evaluate", "UseArn"}
    train = next(s for s in record["Steps"] if s["StepName"] == "Train")
    assert any("val_accuracy=" in line for line in train["LogTail"])


def test_condition_fail_branch_carries_metric_and_threshold(
    tiny_image: str, make_session: Any, bucket: str
) -> None:
    session = make_session()
    execution = _run(
        graphs.train_evaluate_register(session, tiny_image, bucket), EvalAccuracy=0.3, Threshold=0.8
    )
    assert execution.describe()["PipelineExecutionStatus"] == "Failed"
    steps = _steps(execution)
    assert "Register-RegisterModel" not in steps
    message = steps["AccuracyTooLow"]["FailureReason"]
    assert "0.3" in message and "0.8" in message
    assert session.registry.list_groups() == []


@pytest.mark.parametrize("strategy", ["Random", "Bayesian"])
def test_tuning_picks_best_trial(
    tiny_image: str, make_session: Any, bucket: str, s3: Any, strategy: str
) -> None:
    session = make_session()
    execution = _run(graphs.tune_graph(session, tiny_image, bucket, strategy))
    assert execution.describe()["PipelineExecutionStatus"] == "Succeeded"
    tuning = execution.step_execution["Tune"].properties
    summaries = tuning["TrainingJobSummaries"]
    assert len(summaries) == 3
    # Check against what each job really wrote, not what the executor reported.
    written = {}
    for summary in summaries:
        name = summary["TrainingJobName"]
        body = s3.get_object(Bucket=bucket, Key=f"models/{name}/output/output.tar.gz")["Body"]
        with tarfile.open(fileobj=io.BytesIO(body.read())) as archive:
            member = archive.extractfile("data/metrics.json")
            assert member is not None
            written[name] = json.load(member)["val_accuracy"]
    best = max(written, key=lambda name: written[name])
    assert tuning["BestTrainingJob"]["TrainingJobName"] == best
    assert summaries[0]["TrainingJobName"] == best
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in summaries]
    assert values == sorted(values, reverse=True)
    consumer = execution.step_execution["UseBestModel"].properties
    assert (
        consumer["Environment"]["MODEL_URI"] == f"s3://{bucket}/models/{best}/output/model.tar.gz"
    )


def test_tuning_fails_only_when_every_trial_fails(
    tiny_image: str, make_session: Any, bucket: str
) -> None:
    session = make_session()
    execution = _run(graphs.tune_graph(session, tiny_image, bucket, "Random", fail="always"))
    assert execution.describe()["PipelineExecutionStatus"] == "Failed"
    assert "all 3 training jobs" in _steps(execution)["Tune"]["FailureReason"]


def test_cache_hit_then_no_cache_reruns(tiny_image: str, make_session: Any, bucket: str) -> None:
    first = _run(graphs.train_evaluate_register(make_session(), tiny_image, bucket, cache=True))
    first_job = first.step_execution["Train"].properties["TrainingJobName"]

    session = make_session()
    second = _run(graphs.train_evaluate_register(session, tiny_image, bucket, cache=True))
    steps = _steps(second)
    assert second.describe()["PipelineExecutionStatus"] == "Succeeded"
    for name in ("Train", "Evaluate"):
        source = steps[name]["CacheHitResult"]["SourcePipelineExecutionArn"]
        assert source.endswith(first.pipeline_execution_name)
    assert second.step_execution["Train"].properties["TrainingJobName"] == first_job
    # No training or evaluation container ran in the second execution.
    assert not any(n.startswith(("Train-", "Evaluate-")) for n in session.sagemaker_client.outcomes)
    # A registered package per run, each pointing at the (same) cached model.
    assert len(session.registry.list_packages("tiny-models")) == 2

    changed = _run(
        graphs.train_evaluate_register(make_session(), tiny_image, bucket, cache=True),
        EvalAccuracy=0.95,
    )
    changed_steps = _steps(changed)
    assert "CacheHitResult" in changed_steps["Train"]
    assert "CacheHitResult" not in changed_steps["Evaluate"]

    uncached = make_session(cache_enabled=False)
    third = _run(graphs.train_evaluate_register(uncached, tiny_image, bucket, cache=True))
    assert "CacheHitResult" not in _steps(third)["Train"]
    assert third.step_execution["Train"].cache_decision["Reason"] == "caching disabled (--no-cache)"
    assert third.step_execution["Train"].properties["TrainingJobName"] != first_job


def test_transient_failure_is_retried(
    tiny_image: str, make_session: Any, bucket: str, s3: Any
) -> None:
    marker = {"Bucket": bucket, "Key": f"markers/{uuid.uuid4().hex}"}
    urls = {
        "marker_get_url": s3.generate_presigned_url("get_object", Params=marker),
        "marker_put_url": s3.generate_presigned_url("put_object", Params=marker),
    }
    session = make_session()
    pipeline = graphs.train_evaluate_register(
        session, tiny_image, bucket, retry=True, hyperparameters=urls
    )
    execution = _run(pipeline)
    assert execution.describe()["PipelineExecutionStatus"] == "Succeeded", _steps(execution)
    assert _steps(execution)["Train"]["AttemptCount"] == 2


def test_deterministic_failure_is_not_retried(
    tiny_image: str, make_session: Any, bucket: str
) -> None:
    session = make_session()
    pipeline = graphs.train_evaluate_register(
        session, tiny_image, bucket, retry=True, hyperparameters={"fail": "always"}
    )
    execution = _run(pipeline)
    assert execution.describe()["PipelineExecutionStatus"] == "Failed"
    train = _steps(execution)["Train"]
    assert train["AttemptCount"] == 1
    assert "exit code 2" in train["FailureReason"]
    record = RunStore(session.s3_client, bucket).get(execution.pipeline_execution_name)
    train_record = next(s for s in record["Steps"] if s["StepName"] == "Train")
    assert record["Status"] == "Failed"
    assert any("deterministic failure requested" in line for line in train_record["LogTail"])


def test_run_leaves_no_containers_or_temp_dirs(
    tiny_image: str, make_session: Any, bucket: str
) -> None:
    import subprocess
    import tempfile
    from pathlib import Path

    session = make_session()
    execution = _run(graphs.tune_graph(session, tiny_image, bucket, "Random"))
    label = f"label=local-mlops.execution={execution.pipeline_execution_name}"
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True
    )
    assert left.stdout.strip() == ""
    assert not (
        Path(tempfile.gettempdir()) / f"local-mlops-run-{execution.pipeline_execution_name}"
    ).exists()


def test_registry_versions_unique_across_processes(moto_url: str, bucket: str) -> None:
    import subprocess
    import sys

    code = (
        "import boto3,sys,json\n"
        "from local_mlops.stores.registry import LocalModelRegistry\n"
        "s=boto3.Session(aws_access_key_id='a',aws_secret_access_key='b',region_name='us-east-1')\n"
        f"r=LocalModelRegistry(s.client('s3',endpoint_url='{moto_url}'),'{bucket}','us-east-1')\n"
        "v=[r.register('race',model_data_url='s3://x/m',image='i')['ModelPackageVersion']\n"
        "   for _ in range(5)]\n"
        "print(json.dumps(v))\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    versions = [v for p in processes for v in json.loads(p.communicate(timeout=120)[0])]
    assert sorted(versions) == list(range(1, 11))
    s3 = (
        __import__("boto3")
        .Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
        .client("s3", endpoint_url=moto_url)
    )
    registry = LocalModelRegistry(s3, bucket, "us-east-1")
    assert [p["ModelPackageVersion"] for p in registry.list_packages("race")] == list(range(1, 11))
