"""``transform --cloud`` against moto: the model and the Batch Transform job SageMaker gets.

moto stores the job and marks it Completed at once without running anything, so the test plays
the job's part (one ``NAME.out`` per input, one of them an error entry) right after it is
created, as the container would answer in SageMaker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from cloudkit import BUCKET, SERVING_URI
from PIL import Image
from typer.testing import CliRunner

from local_mlops.cli.app import app
from local_mlops.targets import transform as service

runner = CliRunner()
GROUP = "local-mlops-image-classifier"
MODEL_DATA = f"s3://{BUCKET}/models/2/model.tar.gz"


def register(sagemaker: Any, approvals: list[str]) -> None:
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    for status in approvals:
        sagemaker.create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus=status,
            InferenceSpecification={
                "Containers": [{"Image": SERVING_URI, "ModelDataUrl": MODEL_DATA}],
                "SupportedContentTypes": ["application/x-image"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        )


def images(folder: Path) -> Path:
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8), (10, 200, 10)).save(folder / name)
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


@pytest.fixture
def sagemaker_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the job is created, write what the serving container would have answered."""
    real = service.run_job

    def run_job(target: Any, session: Any, **kwargs: Any) -> None:
        real(target, session, **kwargs)
        source, destination = kwargs["source"], kwargs["destination"]
        s3 = session.s3_client

        def answer(name: str) -> dict[str, Any]:
            if name == "broken.png":
                return {"error": "the image is not a readable PNG or JPEG", "status": 400}
            return {
                "predictions": [{"label": "c1", "top_k": [{"label": "c1", "probability": 0.9}]}]
            }

        for item in s3.list_objects_v2(Bucket=source.bucket, Prefix=source.prefix)["Contents"]:
            name = item["Key"][len(source.prefix) :]
            if kwargs.get("packed"):
                # A JSON Lines shard: an answer line per image line, in order (AssembleWith Line).
                shard = s3.get_object(Bucket=source.bucket, Key=item["Key"])["Body"].read()
                names = [json.loads(line)["name"] for line in shard.splitlines()]
                body = "\n".join(json.dumps({"name": n, **answer(n)}) for n in names) + "\n"
            else:
                body = json.dumps(answer(name))
            s3.put_object(
                Bucket=destination.bucket, Key=f"{destination.prefix}{name}.out", Body=body.encode()
            )

    monkeypatch.setattr(service, "run_job", run_job)


def test_transform_creates_the_job_with_the_model_image_and_batching(
    cloud_env: boto3.Session, sagemaker_answers: None, tmp_path: Path
) -> None:
    sagemaker = cloud_env.client("sagemaker")
    register(sagemaker, ["Approved", "Approved", "PendingManualApproval"])
    out = tmp_path / "scores"
    result = runner.invoke(
        app,
        ["transform", "--cloud", "--input", str(images(tmp_path / "in")), "--output", str(out),
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["images"], summary["scored"], summary["errors"]) == (3, 2, 1)
    assert summary["version"] == 2 and summary["classes"] == {"c1": 2}
    assert sorted(p.name for p in out.iterdir()) == ["a.png.out", "b.png.out", "broken.png.out"]

    job = sagemaker.describe_transform_job(TransformJobName=summary["job_name"])
    assert job["ModelName"] == summary["job_name"]
    # A folder travels packed: JSON Lines shards, split by line, 1 MB and 4 requests at a time.
    assert job["BatchStrategy"] == "MultiRecord" and job["MaxPayloadInMB"] == 1
    assert job["MaxConcurrentTransforms"] == 4
    assert job["Environment"] == {"MLOPS_TOP_K": "3", "MLOPS_RECORD_ERRORS": "1"}
    data = job["TransformInput"]
    assert data["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": summary["input"],
    }
    assert data["ContentType"] == "application/jsonlines" and data["SplitType"] == "Line"
    assert summary["input"].startswith(f"s3://{BUCKET}/tmp/transform/")
    assert job["TransformOutput"]["S3OutputPath"] == summary["output"]
    assert job["TransformOutput"]["Accept"] == "application/jsonlines"
    assert job["TransformOutput"]["AssembleWith"] == "Line"
    assert job["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1}
    model = sagemaker.describe_model(ModelName=summary["job_name"])
    assert model["PrimaryContainer"]["Image"] == SERVING_URI
    assert model["PrimaryContainer"]["ModelDataUrl"] == MODEL_DATA


def test_an_s3_prefix_in_and_out_and_a_chosen_version(
    cloud_env: boto3.Session, sagemaker_answers: None
) -> None:
    sagemaker = cloud_env.client("sagemaker")
    register(sagemaker, ["PendingManualApproval"])
    s3 = cloud_env.client("s3")
    s3.put_object(Bucket=BUCKET, Key="batch/in/x.png", Body=b"png bytes")
    result = runner.invoke(
        app,
        ["transform", "--cloud", "--version", "1", "--input", f"s3://{BUCKET}/batch/in",
         "--output", f"s3://{BUCKET}/batch/out/"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "images/s" in result.stdout and "c1 1" in result.stdout
    body = s3.get_object(Bucket=BUCKET, Key="batch/out/x.png.out")["Body"].read()
    assert json.loads(body)["predictions"][0]["label"] == "c1"


def test_no_approved_version_and_no_such_version_are_clear(
    cloud_env: boto3.Session, tmp_path: Path
) -> None:
    register(cloud_env.client("sagemaker"), ["PendingManualApproval"])
    folder = images(tmp_path / "in")
    result = runner.invoke(
        app, ["transform", "--cloud", "--input", str(folder), "--output", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    assert "no approved version" in result.stderr and "models approve" in result.stderr
    result = runner.invoke(
        app,
        ["transform", "--cloud", "--version", "7", "--input", str(folder), "--output",
         str(tmp_path / "o")],
    )  # fmt: skip
    assert result.exit_code == 1 and "does not exist" in result.stderr
