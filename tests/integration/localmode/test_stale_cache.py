"""Nothing stale: a rebuilt image or new data under the same name re-runs the steps it feeds.

Graph: Count (processing: counts the class folders of an S3 prefix and reports the image's
``/opt/program/version.txt``) -> Train (the tiny image's ``train`` on Count's output).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import localmode_graphs as graphs
import pytest
from sagemaker.inputs import TrainingInput
from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep

from local_mlops.stores.runstore import RunStore

pytestmark = pytest.mark.docker

COUNT = """
import json, os, pathlib
root = pathlib.Path('/opt/ml/processing/input/data')
version = pathlib.Path('/opt/program/version.txt')
report = {
    'classes': sorted(p.name for p in root.iterdir() if p.is_dir()),
    'version': version.read_text().strip() if version.exists() else None,
}
os.makedirs('/opt/ml/processing/output', exist_ok=True)
json.dump(report, open('/opt/ml/processing/output/result.json', 'w'))
print('counted', report)
"""


def count_graph(session: Any, image: str, bucket: str) -> Pipeline:
    cache = CacheConfig(enable_caching=True, expire_after="P1D")
    processor = Processor(
        image_uri=image,
        role=graphs.ROLE,
        instance_count=1,
        instance_type="local",
        entrypoint=["python3", "-c", COUNT],
        sagemaker_session=session,
    )
    count = ProcessingStep(
        name="Count",
        step_args=processor.run(
            inputs=[
                ProcessingInput(
                    source=f"s3://{bucket}/data/", destination="/opt/ml/processing/input/data"
                )
            ],
            outputs=[
                ProcessingOutput(
                    output_name="count",
                    source="/opt/ml/processing/output",
                    destination=f"s3://{bucket}/count",
                )
            ],
        ),
        cache_config=cache,
    )
    counted = count.properties.ProcessingOutputConfig.Outputs["count"].S3Output.S3Uri
    train = TrainingStep(
        name="Train",
        step_args=graphs.estimator(session, image, bucket).fit(
            inputs={"train": TrainingInput(s3_data=counted)}
        ),
        cache_config=cache,
    )
    return Pipeline(name=f"stale-{bucket}", steps=[count, train], sagemaker_session=session)


def run(session: Any, image: str, bucket: str) -> dict[str, dict]:
    """Run the graph; the run record's steps by name."""
    pipeline = count_graph(session, image, bucket)
    pipeline.upsert(role_arn=graphs.ROLE)
    execution = pipeline.start()
    record = RunStore(session.s3_client, bucket).get(execution.pipeline_execution_name)
    assert record["Status"] == "Succeeded", record
    steps = {s["StepName"]: s for s in record["Steps"]}
    steps["_id"] = {"id": record["ExecutionId"]}
    return steps


def result(s3: Any, bucket: str) -> dict:
    return json.loads(s3.get_object(Bucket=bucket, Key="count/result.json")["Body"].read())


def put_classes(s3: Any, bucket: str, names: list[str]) -> None:
    for name in names:
        s3.put_object(Bucket=bucket, Key=f"data/{name}/1.png", Body=name.encode())


@pytest.fixture
def versioned_image(tiny_image: str, tmp_path: Path) -> Iterator[Any]:
    """Build ``FROM tiny`` + version.txt under a tag of its own; rebuild with another version."""
    tag = f"local-mlops-tiny-stale:{uuid.uuid4().hex[:8]}"
    built: list[str] = []
    (tmp_path / "Dockerfile").write_text(f"FROM {tiny_image}\nCOPY version.txt /opt/program/\n")

    def build(version: str) -> str:
        (tmp_path / "version.txt").write_text(version)
        subprocess.run(
            ["docker", "build", "-q", "-t", tag, str(tmp_path)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        image_id = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Id}}", tag],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        built.append(image_id)
        return tag

    yield build
    subprocess.run(["docker", "rmi", "-f", tag, *built], capture_output=True, check=False)


def test_rebuilt_image_reruns_its_steps(
    versioned_image: Any, make_session: Any, bucket: str, s3: Any
) -> None:
    put_classes(s3, bucket, ["red", "green", "blue"])
    image = versioned_image("v1")
    first = run(make_session(), image, bucket)
    assert first["Count"]["Cache"]["Reason"] == "no earlier run"
    assert result(s3, bucket)["version"] == "v1"

    again = run(make_session(), image, bucket)
    for name in ("Count", "Train"):
        assert again[name]["CacheHitResult"], again[name]
        assert again[name]["Cache"]["Reason"] == f"cache hit from execution {first['_id']['id']}"

    image = versioned_image("v2")  # same tag, changed container code
    rebuilt = run(make_session(), image, bucket)
    for name in ("Count", "Train"):
        assert not rebuilt[name]["CacheHitResult"]
        reason = rebuilt[name]["Cache"]["Reason"]
        assert f"image {image} changed (sha256:" in reason, reason
        assert reason.endswith(f"since execution {first['_id']['id']}"), reason
    assert result(s3, bucket)["version"] == "v2"  # the new code ran


def test_new_data_under_the_same_prefix_reruns_its_steps(
    tiny_image: str, make_session: Any, bucket: str, s3: Any
) -> None:
    put_classes(s3, bucket, ["red", "green", "blue"])
    first = run(make_session(), tiny_image, bucket)
    assert len(result(s3, bucket)["classes"]) == 3

    unchanged = run(make_session(), tiny_image, bucket)
    assert unchanged["Count"]["CacheHitResult"] and unchanged["Train"]["CacheHitResult"]

    put_classes(s3, bucket, ["yellow"])  # a fourth class under the same URI
    changed = run(make_session(), tiny_image, bucket)
    count = changed["Count"]
    assert not count["CacheHitResult"]
    assert count["Cache"]["Reason"] == (
        f"input s3://{bucket}/data/ changed since execution {first['_id']['id']}"
    )
    assert not changed["Train"]["CacheHitResult"]
    assert f"input s3://{bucket}/count changed" in changed["Train"]["Cache"]["Reason"]
    assert result(s3, bucket)["classes"] == ["blue", "green", "red", "yellow"]
