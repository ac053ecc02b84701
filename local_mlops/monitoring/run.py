"""``monitor run``: one monitoring job over a time window of an endpoint's captured data.

The job is the runtime image's ``mlops_container.monitor`` as a SageMaker processing job
through the target's job session (local mode on the local target). Its inputs:

    s3://BUCKET/datacapture/ENDPOINT/        captured requests (the window is chosen by time)
    s3://BUCKET/groundtruth/ENDPOINT/        ground truth records, when there are any
    DriftCheckBaselines' folder              statistics.json, constraints.json, PCA basis, ...
    the package's ModelDataUrl               model.tar.gz (the features need the model)

and it writes statistics.json, constraint_violations.json and summary.json to
``s3://BUCKET/monitoring/ENDPOINT/TIMESTAMP/``. Violations are findings: the run succeeds.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError
from local_mlops.monitoring.records import GROUND_TRUTH_PREFIX
from local_mlops.pipeline import contract
from local_mlops.serving.capture import CAPTURE_PREFIX
from local_mlops.targets import Target

MONITORING_PREFIX = "monitoring"
Say = Callable[[str], None]


def pick_package(packages: list[dict[str, Any]], version: int | None) -> dict[str, Any]:
    """The given version; else the newest Approved one; else the newest."""
    if not packages:
        raise LocalMlopsError(
            "the model registry has no model versions", "run the pipeline: local-mlops run"
        )
    if version is not None:
        for package in packages:
            if package.get("ModelPackageVersion") == version:
                return package
        raise LocalMlopsError(
            f"model version {version} does not exist", "list versions: local-mlops models list"
        )
    approved = [p for p in packages if p.get("ModelApprovalStatus") == "Approved"]
    return (approved or packages)[-1]


def baseline_folder(package: dict[str, Any]) -> str:
    """The S3 folder of the package's data-quality drift-check baseline."""
    try:
        uri = package["DriftCheckBaselines"]["ModelDataQuality"]["Statistics"]["S3Uri"]
    except (KeyError, TypeError):
        uri = ""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise LocalMlopsError(
            f"model version {package.get('ModelPackageVersion')} has no drift-check baselines "
            "(it was registered before the pipeline wrote drift-check baselines)",
            "run the pipeline again (local-mlops run) and monitor the new version",
        )
    return uri.rsplit("/", 1)[0] + "/"


def model_data(package: dict[str, Any]) -> str:
    """The package's model artifact URI."""
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    uri = containers[0].get("ModelDataUrl")
    if not uri:
        raise LocalMlopsError("the model version has no ModelDataUrl", "register it again")
    return str(uri)


def has_objects(s3: Any, bucket: str, prefix: str) -> bool:
    """Whether anything is stored under ``prefix`` (an empty ProcessingInput fails the job)."""
    return bool(s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount"))


def read_json(s3: Any, uri: str) -> Any:
    """A JSON object from S3."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def window_bounds(now: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """(start, end) of the window that ends ``now``, in whole seconds (the job's arguments).

    The end is rounded up: the job reads ``inferenceTime < end``, so a request captured in this
    very second (traffic sent just before) is in the window instead of just past its end.
    """
    end = now.replace(microsecond=0)
    if now.microsecond:
        end += timedelta(seconds=1)
    return end - window, end


def run_monitor(
    settings: Settings,
    target: Target,
    endpoint: str,
    window: timedelta,
    version: int | None = None,
    say: Say = print,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Run the monitoring job for the last ``window`` of ``endpoint``; returns the report."""
    start, end = window_bounds(now or datetime.now(UTC), window)
    group = settings.model_package_group
    package = pick_package(target.models.list_packages(group), version)
    baseline_folder(package)  # fails before any job starts
    with target.job_session() as session:
        return _run_job(session, target, package, endpoint, start, end, say)


def _run_job(
    session: Any,
    target: Target,
    package: dict[str, Any],
    endpoint: str,
    start: datetime,
    end: datetime,
    say: Say,
) -> dict[str, Any]:
    from botocore.exceptions import ClientError
    from sagemaker.exceptions import UnexpectedStatusException
    from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor

    s3 = session.s3_client
    baseline = baseline_folder(package)
    bucket = target.bucket
    stamp = end.strftime("%Y-%m-%dT%H-%M-%SZ")
    output = f"s3://{bucket}/{MONITORING_PREFIX}/{endpoint}/{stamp}"
    inputs = [
        ProcessingInput(source=baseline, destination=contract.PROCESSING_BASELINE),
        ProcessingInput(source=model_data(package), destination=contract.PROCESSING_MODEL),
    ]
    for prefix, folder in (
        (CAPTURE_PREFIX, contract.PROCESSING_CAPTURE),
        (GROUND_TRUTH_PREFIX, contract.PROCESSING_GROUND_TRUTH),
    ):
        if has_objects(s3, bucket, f"{prefix}/{endpoint}/"):
            inputs.append(
                ProcessingInput(source=f"s3://{bucket}/{prefix}/{endpoint}/", destination=folder)
            )
        elif prefix == CAPTURE_PREFIX:
            say(f"No data captured for endpoint {endpoint!r} yet: the report will be empty.")
    # Whole minutes read well for `monitor run`'s hour; a window of seconds (the main job's
    # first report) needs them.
    clock = "%H:%M" if (end - start).total_seconds() >= 300 else "%H:%M:%S"
    say(
        f"Monitoring {endpoint} from {start:%Y-%m-%d} {start.strftime(clock)} to "
        f"{end.strftime(clock)} UTC against model version {package.get('ModelPackageVersion')} ..."
    )
    processor = Processor(
        role=target.role_arn,
        image_uri=target.image_uri,
        instance_count=1,
        instance_type=target.processing_instance_type,
        entrypoint=["python3", "-m", "mlops_container.monitor"],
        sagemaker_session=session,
        base_job_name="local-mlops-monitor",
    )
    try:
        # Local mode streams the job's output to stdout; keep stdout for the --json report.
        with contextlib.redirect_stdout(sys.stderr):
            processor.run(
                inputs=inputs,
                outputs=[
                    ProcessingOutput(
                        output_name="report",
                        source=contract.PROCESSING_MONITOR_OUTPUT,
                        destination=output,
                    )
                ],
                arguments=[
                    "--start",
                    start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "--end",
                    end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "--endpoint",
                    endpoint,
                ],  # fmt: skip
                wait=True,
                logs=False,
            )
    except (RuntimeError, ClientError, UnexpectedStatusException) as error:
        raise LocalMlopsError(
            f"the monitoring job failed: {error}",
            "read its output above; an image without mlops_container.monitor needs "
            "`local-mlops build`",
        ) from error
    summary = read_json(s3, f"{output}/{contract.SUMMARY_FILE}")
    violations = read_json(s3, f"{output}/{contract.VIOLATIONS_FILE}")["violations"]
    return {
        **summary,
        "violation_count": summary["violations"],
        "violations": violations,
        "model_package": package.get("ModelPackageArn"),
        "report_uri": f"{output}/",
    }
