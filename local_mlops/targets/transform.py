"""Batch transform on either target: a registered version scores a folder or an S3 prefix.

The same code runs both: a SageMaker model (the version's artifact in the serving image) and a
``Transformer`` job on the target's job session — local mode's (extended in
``localmode/transform.py``) or SageMaker's. An S3 prefix is scored object by object:
whole files (``SplitType`` None) sent as ``application/x-image``, ``BatchStrategy`` MultiRecord,
``MaxConcurrentTransforms`` from the container's ``/execution-parameters`` (its max batch), so
the server's dynamic batcher merges the concurrent records into shared forwards. A local folder
is packed into JSON Lines shards (``batch.pack_folder``) split by line, many images a request,
and unpacked into one ``NAME.out`` an image afterwards. The job asks the container to answer an
unreadable image with an error entry (``MLOPS_RECORD_ERRORS``) instead of failing the job.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError
from local_mlops.pipeline import contract
from local_mlops.serving import batch
from local_mlops.serving import local as serving_local

Say = Callable[[str], None]
OnRecord = Callable[[int, int, str], None]
MAX_PAYLOAD_MB = 6  # SageMaker's default; the serving image's limit too
DEFAULT_TOP = 3  # classes in each output's top_k
# A packed job's requests: about 250 small images each, a few in flight (the server decodes one
# while it runs another's forward); SageMaker caps concurrency x payload at 100 MB.
PACKED_PAYLOAD_MB = 1
PACKED_CONCURRENCY = 4


def job_name(settings: Settings, now: dt.datetime | None = None) -> str:
    """A unique job (and model) name within SageMaker's 63 characters."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S-%f")[:-3]
    return f"{settings.project[:30]}-transform-{stamp}"


def transformer_environment(top: int) -> dict[str, str]:
    """What the job sets for the serving container."""
    return {contract.TOP_K_ENV: str(top), contract.RECORD_ERRORS_ENV: "1"}


def transformer(
    target: Any,
    session: Any,
    *,
    model_name: Any,
    output_path: Any,
    top: int,
    tags: list[dict[str, str]],
    packed: bool = False,
    packed_payload_mb: int = 1,
) -> Any:
    """The job's ``Transformer``: the same settings for ``transform`` and the graph's BatchScore
    step (whose model name and output path are pipeline variables). ``packed``: the input is
    JSON Lines shards (``batch.pack_folder``), sent ``PACKED_PAYLOAD_MB`` a request and answered
    a JSON line a record."""
    from sagemaker.transformer import Transformer

    return Transformer(
        model_name=model_name,
        instance_count=1,
        instance_type=target.transform_instance_type,
        strategy="MultiRecord",
        output_path=output_path,
        accept=contract.TRANSFORM_PACKED_CONTENT_TYPE if packed else "application/json",
        assemble_with="Line" if packed else None,
        max_payload=packed_payload_mb if packed else MAX_PAYLOAD_MB,
        max_concurrent_transforms=PACKED_CONCURRENCY if packed else None,
        env=transformer_environment(top),
        tags=tags,
        sagemaker_session=session,
    )


def start(transformer: Any, data: Any, job_name: str | None = None, packed: bool = False) -> Any:
    """Run the job on an S3 prefix of whole images, or of JSON Lines shards when ``packed`` (a
    pipeline session records the step's arguments instead, which is what
    ``TransformStep(step_args=...)`` takes)."""
    return transformer.transform(
        data=data,
        data_type="S3Prefix",
        content_type=contract.TRANSFORM_PACKED_CONTENT_TYPE
        if packed
        else contract.TRANSFORM_CONTENT_TYPE,
        split_type="Line" if packed else None,
        job_name=job_name,
        wait=True,
        logs=False,
    )


def run_job(
    target: Any,
    session: Any,
    *,
    name: str,
    model_data_url: str,
    source: batch.Location,
    destination: batch.Location,
    top: int,
    tags: list[dict[str, str]],
    packed: bool = False,
    packed_payload_mb: int = 1,
) -> None:
    """Create the model and run the transform job to its end (raises on a failed job);
    ``packed``: see ``transformer``."""
    session.create_model(
        name,
        role=target.role_arn,
        container_defs={
            "Image": target.model_image_uri,
            "ModelDataUrl": model_data_url,
            "Environment": {},
        },
        tags=tags,
    )
    job = transformer(
        target, session, model_name=name, output_path=destination.uri, top=top, tags=tags,
        packed=packed, packed_payload_mb=packed_payload_mb,
    )  # fmt: skip
    start(job, source.uri, job_name=name, packed=packed)


def transform(
    settings: Settings,
    say: Say,
    *,
    input_path: str,
    output_path: str,
    version: int | None = None,
    top: int = DEFAULT_TOP,
    on_start: Callable[[int], None] | None = None,
    on_record: OnRecord | None = None,
) -> batch.Summary:
    """Score every image under ``input_path`` with a registered version; the job's summary."""
    from local_mlops.targets.endpoints import opened

    if top < 1:
        raise LocalMlopsError(f"--top {top} is out of range", "pass --top 1 or more")
    job = Job(settings, job_name(settings), top, on_start, on_record)
    source = batch.locate(input_path, settings.bucket, job.name, "input")
    destination = batch.locate(output_path, settings.bucket, job.name, "output")
    if source.folder is not None:
        batch.image_files(source.folder)  # an empty or missing folder fails before anything starts
    with opened(settings, say) as (target, _):
        package = serving_local.resolve_package(
            target.models, settings.model_package_group, version
        )
        with target.job_session() as session:
            return job.score(say, target, session, package, source, destination)


@dataclass
class Job:
    """One transform job's settings, name and callbacks."""

    settings: Settings
    name: str
    top: int
    on_start: Callable[[int], None] | None = None
    on_record: OnRecord | None = None

    def score(
        self,
        say: Say,
        target: Any,
        session: Any,
        package: dict[str, Any],
        source: batch.Location,
        destination: batch.Location,
    ) -> batch.Summary:
        """Stage the input, run the job, read its outputs back (and download them)."""
        from local_mlops.account.tags import project_tags

        model_data_url = serving_local.model_data_url(package)
        chosen = int(package["ModelPackageVersion"])
        s3 = session.s3_client
        packed = None
        job_output = destination
        if source.folder is not None:
            # A folder travels as a few JSON Lines shards, not an object an image.
            packed = batch.pack_folder(source.folder)
            batch.upload_shards(s3, packed, source)
            names = [*packed.names, *(r.name for r in packed.oversized)]
            job_output = batch.Location(source.uri.removesuffix("input/") + "packed-output/")
            say(f"Packed {len(names)} file(s) from {source.folder} into {len(packed.shards)} "
                f"JSON Lines shard(s) under {source.uri}")  # fmt: skip
        else:
            names = batch.list_names(s3, source)
        say(f"Transform job {self.name}: version {chosen} scores {len(names)} image(s)")
        if self.on_start is not None:
            self.on_start(len(names))
        session.on_transform_record = self.on_record
        started = time.perf_counter()
        try:
            # The SDK's wait prints dots and "!" on stdout, which stays machine-readable.
            with contextlib.redirect_stdout(sys.stderr):
                run_job(
                    target,
                    session,
                    name=self.name,
                    model_data_url=model_data_url,
                    source=source,
                    destination=job_output,
                    top=self.top,
                    tags=project_tags(self.settings, created_by="transform"),
                    packed=packed is not None,
                    # A shard line (one image) must fit a request: photos over ~750 KB need
                    # SageMaker's largest payload.
                    packed_payload_mb=PACKED_PAYLOAD_MB
                    if packed is None or packed.largest <= PACKED_PAYLOAD_MB * 1024 * 1024
                    else MAX_PAYLOAD_MB,
                )
        except Exception as exc:
            raise LocalMlopsError(
                f"transform job {self.name} failed: {_reason(exc)}",
                f"check the model with `local-mlops models describe {chosen}`; "
                "an image the model cannot read is an error entry, not a failure",
            ) from exc
        seconds = time.perf_counter() - started
        folder = ""
        if packed is not None:
            results = batch.unpack_results(s3, packed, job_output, destination)
        else:
            results = batch.read_results(s3, destination, names)
            if destination.folder is not None:
                batch.download(s3, destination, names, destination.folder)
        if destination.folder is not None:
            folder = str(Path(destination.folder).resolve())
        return batch.summarize(
            results,
            seconds,
            job_name=self.name,
            version=chosen,
            input_uri=source.uri,
            output_uri=destination.uri if destination.folder is None else job_output.uri,
            output_folder=folder,
        )


def _reason(exc: Exception) -> str:
    """The failure reason SageMaker reports, else the error's own text (first lines)."""
    reason = getattr(exc, "message", None) or str(exc)
    lines = str(reason).strip().splitlines()
    return "\n".join(lines[:12]) if lines else type(exc).__name__
