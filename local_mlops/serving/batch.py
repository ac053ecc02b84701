"""Batch transform's pieces that do not depend on the target: where the job reads and writes,
uploading a local folder, reading the ``.out`` objects back, and the summary.

A SageMaker transform job writes one ``NAME.out`` per input object ``NAME`` under its output
prefix; here each is the serving container's JSON answer, ``{"predictions": [{"label",
"top_k", ...}]}``, or ``{"error", "status"}`` for an image it could not read.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_mlops.errors import LocalMlopsError

OUT_SUFFIX = ".out"
SHARD_IMAGES = 1024  # images a packed shard holds
MAX_RECORD_BYTES = 6 * 1024 * 1024  # one packed line at most: SageMaker's largest payload


@dataclass(frozen=True)
class Location:
    """One side of a job: the S3 prefix the job uses, and the local folder behind it, if any."""

    uri: str  # s3://bucket/prefix/
    folder: Path | None = None

    @property
    def bucket(self) -> str:
        return self.uri.removeprefix("s3://").partition("/")[0]

    @property
    def prefix(self) -> str:
        return self.uri.removeprefix("s3://").partition("/")[2]


def locate(given: str, bucket: str, job_name: str, side: str) -> Location:
    """An ``s3://`` prefix as given, or a local folder staged under ``tmp/transform/JOB/SIDE/``."""
    if given.startswith("s3://"):
        if not given.removeprefix("s3://").partition("/")[0]:
            raise LocalMlopsError(f"{given!r} names no bucket", "pass s3://BUCKET/PREFIX/")
        return Location(given if given.endswith("/") else given + "/")
    if "://" in given:
        raise LocalMlopsError(f"{given!r} is neither a folder nor an s3:// prefix",
                              "pass a local folder or s3://BUCKET/PREFIX/")  # fmt: skip
    # Under tmp/, which the cloud bucket's lifecycle rule expires after 7 days.
    return Location(f"s3://{bucket}/tmp/transform/{job_name}/{side}/", Path(given).expanduser())


def image_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` (hidden ones left out), in name order; empty is an error."""
    if not folder.is_dir():
        raise LocalMlopsError(
            f"{folder} is not a folder", "pass a folder of images or an s3:// prefix"
        )
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )  # fmt: skip
    if not files:
        raise LocalMlopsError(f"{folder} holds no files", "put the images to score in it")
    return files


def upload_folder(s3: Any, folder: Path, location: Location) -> list[str]:
    """Put every image of ``folder`` under the location's prefix, keeping sub-folders; their
    names below the prefix."""
    names = [path.relative_to(folder).as_posix() for path in image_files(folder)]
    for name in names:
        s3.upload_file(str(folder / name), location.bucket, location.prefix + name)
    return names


@dataclass
class Packed:
    """A folder packed for a line-split job: JSON Lines shards of ``{"name", "b64"}``, the
    names they hold in order, and the files too large to send (error entries already)."""

    shards: list[tuple[str, bytes]]
    names: list[str]
    oversized: list[Result]

    @property
    def largest(self) -> int:
        """The longest line's bytes, its newline included (what one request must hold)."""
        return max((len(line) + 1 for _, body in self.shards for line in body.splitlines()),
                   default=0)  # fmt: skip


def pack_folder(folder: Path, shard_images: int = SHARD_IMAGES) -> Packed:
    """Every file of ``folder`` as a JSON line, ``shard_images`` lines a shard."""
    names, lines, oversized = [], [], []
    for path in image_files(folder):
        name = path.relative_to(folder).as_posix()
        line = json.dumps({"name": name, "b64": base64.b64encode(path.read_bytes()).decode()})
        if len(line) + 1 > MAX_RECORD_BYTES:
            oversized.append(Result(name, error=f"{name} is over {MAX_RECORD_BYTES} bytes encoded"))
            continue
        names.append(name)
        lines.append(line.encode())
    shards = [
        (
            f"part-{index // shard_images:05d}.jsonl",
            b"\n".join(lines[index : index + shard_images]) + b"\n",
        )
        for index in range(0, len(lines), shard_images)
    ]
    return Packed(shards, names, oversized)


def upload_shards(s3: Any, packed: Packed, location: Location) -> None:
    for name, body in packed.shards:
        s3.put_object(Bucket=location.bucket, Key=location.prefix + name, Body=body)


def unpack_results(
    s3: Any, packed: Packed, job_output: Location, destination: Location
) -> list[Result]:
    """Read the shards' ``.out`` (one answer line a record), write each image's ``NAME.out``
    where the user asked (the folder, else the S3 prefix); the results in the input's order."""
    answers: dict[str, bytes] = {}
    for shard, _ in packed.shards:
        key = job_output.prefix + shard + OUT_SUFFIX
        try:
            body = s3.get_object(Bucket=job_output.bucket, Key=key)["Body"].read()
        except Exception:  # noqa: BLE001 - its images become "no output" entries below
            continue
        for line in body.splitlines():
            if line.strip():
                answer = json.loads(line)
                answers[str(answer.pop("name", ""))] = json.dumps(answer).encode()
    results = [
        parse_out(name, answers[name]) if name in answers
        else Result(name, error="no output was written for it")
        for name in packed.names
    ]  # fmt: skip
    written = [(name, answers[name]) for name in packed.names if name in answers]
    if destination.folder is not None:
        for name, body in written:
            if ".." in Path(name).parts:
                continue
            target = destination.folder / (name + OUT_SUFFIX)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
    else:

        def put(item: tuple[str, bytes]) -> None:
            s3.put_object(Bucket=destination.bucket, Key=destination.prefix + item[0] + OUT_SUFFIX,
                          Body=item[1])  # fmt: skip

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, written))
    return [*results, *packed.oversized]


def list_names(s3: Any, location: Location) -> list[str]:
    """The objects' names below an S3 prefix; none is an error (a job of nothing fails)."""
    names: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix):
        names.extend(
            item["Key"][len(location.prefix) :]
            for item in page.get("Contents", [])
            if not item["Key"].endswith("/")
        )
    if not names:
        raise LocalMlopsError(f"nothing under {location.uri}", "upload the images to score there")
    return sorted(names)


def count_outputs(s3: Any, location: Location) -> int:
    """How many ``.out`` objects are under the location's prefix (0 when none)."""
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=location.bucket, Prefix=location.prefix
    ):
        count += sum(1 for item in page.get("Contents", []) if item["Key"].endswith(OUT_SUFFIX))
    return count


@dataclass
class Result:
    """One image's entry: its name, the best class and the top classes, or the error."""

    name: str
    label: str | None = None
    top: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


def parse_out(name: str, body: bytes) -> Result:
    """One ``.out`` object as a result (an unparsable one counts as an error entry)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return Result(name, error=f"the output is not JSON: {body[:80]!r}")
    if "error" in answer:
        return Result(name, error=str(answer["error"]))
    prediction = (answer.get("predictions") or [{}])[0]
    top = [
        {"label": t["label"], "probability": t["probability"]} for t in prediction.get("top_k", [])
    ]
    return Result(name, label=prediction.get("label"), top=top)


def read_results(s3: Any, location: Location, names: list[str]) -> list[Result]:
    """The ``NAME.out`` of every input name; a missing one is an error entry."""
    results = []
    for name in names:
        try:
            body = s3.get_object(Bucket=location.bucket, Key=location.prefix + name + OUT_SUFFIX)
        except Exception as exc:  # noqa: BLE001 - the entry says what happened
            results.append(Result(name, error=f"no output was written ({exc})"))
            continue
        results.append(parse_out(name, body["Body"].read()))
    return results


def download(s3: Any, location: Location, names: list[str], folder: Path) -> int:
    """Copy each ``NAME.out`` into ``folder`` (sub-folders kept); how many were there."""
    count = 0
    for name in names:
        if ".." in Path(name).parts:
            continue
        target = folder / (name + OUT_SUFFIX)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            s3.download_file(location.bucket, location.prefix + name + OUT_SUFFIX, str(target))
        except Exception:  # noqa: BLE001 - read_results already made it an error entry
            continue
        count += 1
    return count


@dataclass
class Summary:
    """What a finished job scored: counts per class, errors, and how fast."""

    job_name: str
    version: int
    images: int
    classes: dict[str, int]
    errors: list[Result]
    seconds: float
    input_uri: str
    output_uri: str
    output_folder: str = ""
    results: list[Result] = field(default_factory=list)

    @property
    def scored(self) -> int:
        return self.images - len(self.errors)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_name": self.job_name,
            "version": self.version,
            "input": self.input_uri,
            "output": self.output_uri,
            "output_folder": self.output_folder,
            "images": self.images,
            "scored": self.scored,
            "errors": len(self.errors),
            "classes": self.classes,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
            "error_entries": [{"name": r.name, "error": r.error} for r in self.errors],
            "results": [
                {"name": r.name, "label": r.label, "top": r.top, "error": r.error}
                for r in self.results
            ],
        }


def summarize(
    results: list[Result], seconds: float, *, job_name: str, version: int, input_uri: str,
    output_uri: str, output_folder: str = "",
) -> Summary:  # fmt: skip
    """The summary of a job's results."""
    counts = Counter(r.label for r in results if not r.error and r.label is not None)
    return Summary(
        job_name=job_name,
        version=version,
        images=len(results),
        classes=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        errors=[r for r in results if r.error],
        seconds=seconds,
        input_uri=input_uri,
        output_uri=output_uri,
        output_folder=output_folder,
        results=results,
    )
