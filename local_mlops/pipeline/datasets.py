"""Datasets into the bucket, as Ground Truth-style augmented manifests.

The importer runs inside the runtime image (the same code the pipeline's steps use), writing
images, ``manifest.jsonl`` and ``classes.json`` to a temp folder that is then uploaded to
``s3://BUCKET/datasets/NAME/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from local_mlops.config import Settings
from local_mlops.devenv import dockerhost, processes
from local_mlops.errors import LocalMlopsError
from local_mlops.s3 import object_exists, s3_client, upload_tree

KINDS = ("digits", "cifar10", "imagefolder", "unlabeled")
MANIFEST = "manifest.jsonl"
SHARDS = "shards"
# What each import of a local source was made from (see source_fingerprint).
IMPORTS_PREFIX = "_local-mlops/imports"
SKIPPED = "skipped: "  # the importer's line for each image --skip-bad-images left out


def dataset_uri(settings: Settings, name: str) -> str:
    return f"s3://{settings.bucket}/datasets/{name}/"


def exists(settings: Settings, endpoint: str, name: str) -> bool:
    """Whether the dataset was imported (its shard is what the pipeline reads)."""
    key = f"datasets/{name}/{SHARDS}/images-000.tar"
    return object_exists(s3_client(settings, endpoint), settings.bucket, key)


def _user_paths(text: str, mounts: dict[str, str]) -> str:
    """Say the user's paths where the importer's output names its container paths."""
    for inside, outside in mounts.items():
        text = text.replace(inside, outside)
    return text


def run_importer(
    settings: Settings,
    kind: str,
    output: Path,
    base_uri: str,
    source: Path | None = None,
    per_class: int | None = None,
    labels: Path | None = None,
    skip_bad_images: bool = False,
) -> list[str]:
    """Run ``mlops_container.importer`` in the runtime image; returns its output lines."""
    if kind not in KINDS:
        raise LocalMlopsError(f"unknown dataset {kind!r}", f"use one of: {', '.join(KINDS)}")
    if source is not None and not source.exists():
        raise LocalMlopsError(
            f"{source} does not exist", "pass an existing file or folder to --data"
        )
    if not dockerhost.image_exists(settings.image_uri):
        raise LocalMlopsError(
            f"the runtime image {settings.image_uri} is not built", "local-mlops build"
        )
    argv = ["docker", "run", "--rm", "--user", f"{os.getuid()}:{os.getgid()}"]
    # A killed CLI leaves this container running; the labels let the next command remove it.
    for key, value in processes.container_labels(processes.project_of(settings)).items():
        argv += ["--label", f"{key}={value}"]
    argv += ["-v", f"{output}:/data/output"]
    args = ["--dataset", kind, "--output", "/data/output", "--base-uri", base_uri]
    mounts: dict[str, str] = {"/data/output": str(output)}
    if source is not None:
        inside = f"/data/source/{source.name}"
        argv += ["-v", f"{source.resolve()}:{inside}:ro"]
        args += ["--source", inside]
        mounts[inside] = str(source)
    if labels is not None:
        inside = f"/data/labels/{labels.name}"
        argv += ["-v", f"{labels.resolve()}:{inside}:ro"]
        args += ["--labels", inside]
        mounts[inside] = str(labels)
    if per_class:
        args += ["--per-class", str(per_class)]
    if skip_bad_images:
        args.append("--skip-bad-images")
    argv += [settings.image_uri, "python3", "-m", "mlops_container.importer", *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        text = _user_paths(reason[0], mounts).removeprefix("error: ")
        raise LocalMlopsError(f"the import failed: {text}")
    return [_user_paths(line, mounts) for line in done.stdout.strip().splitlines()]


def pack_shard(folder: Path) -> Path:
    """Pack the dataset root (manifest, classes, images) into ``shards/images-000.tar``.

    Processing jobs download the one shard instead of thousands of small objects.
    """
    shard = folder / SHARDS / "images-000.tar"
    shard.parent.mkdir(exist_ok=True)
    members = sorted(p for p in folder.iterdir() if p.name != SHARDS)
    with tarfile.open(shard, "w") as archive:
        for member in members:
            archive.add(member, arcname=member.name)
    return shard


def upload_folder(settings: Settings, endpoint: str, folder: Path, prefix: str) -> int:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return upload_tree(s3_client(settings, endpoint), settings.bucket, files, folder, prefix)


def import_dataset(
    settings: Settings,
    endpoint: str,
    kind: str,
    name: str | None = None,
    source: Path | None = None,
    per_class: int | None = None,
    labels: Path | None = None,
    say: Any = print,
    skip_bad_images: bool = False,
    title: str | None = None,
) -> str:
    """Import a dataset into the bucket; returns its S3 URI (``title`` names it to the user)."""
    name = name or kind
    uri = dataset_uri(settings, name)
    with tempfile.TemporaryDirectory(
        prefix="local-mlops-import-", dir=processes.work_root()
    ) as tmp:
        processes.claim_folder(Path(tmp), processes.project_of(settings))
        out = Path(tmp) / "dataset"  # beside owner.json, which must not be uploaded
        out.mkdir()
        lines = run_importer(
            settings, kind, out, uri, source, per_class, labels, skip_bad_images=skip_bad_images
        )
        pack_shard(out)
        count = upload_folder(settings, endpoint, out, f"datasets/{name}")
    # Whatever an earlier import of this name was made from, it is not what is there now.
    s3_client(settings, endpoint).delete_object(
        Bucket=settings.bucket, Key=f"{IMPORTS_PREFIX}/{name}.json"
    )
    for line in lines:
        if line.startswith(SKIPPED):
            say(f"Skipped an unreadable image: {line.removeprefix(SKIPPED)}")
    summary = lines[-1] if lines else ""
    say(f"Imported {title or kind} into {uri} ({count} files). {summary}")
    return uri


def source_fingerprint(kind: str, source: Path, importer_image: str | None) -> str:
    """sha256 over the importer image and every file's relative path, size and content.

    Same fingerprint, same import: a re-import writes fresh annotation dates into the manifest,
    so importing an unchanged folder again would look like new data to the step cache.
    """
    digest = hashlib.sha256(f"{kind}\0{importer_image}\n".encode())
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for file in files:
        relative = file.name if file == source else file.relative_to(source).as_posix()
        digest.update(f"{relative}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\n")
    return digest.hexdigest()


def _imported_fingerprint(client: Any, bucket: str, name: str) -> str | None:
    from botocore.exceptions import ClientError

    try:
        body = client.get_object(Bucket=bucket, Key=f"{IMPORTS_PREFIX}/{name}.json")["Body"]
    except ClientError:
        return None
    return json.loads(body.read()).get("fingerprint")


def import_local_source(
    settings: Settings,
    endpoint: str,
    kind: str,
    source: Path,
    say: Any = print,
    skip_bad_images: bool = False,
) -> str:
    """Import a local folder or archive, or reuse its earlier import when nothing changed."""
    name = f"{kind}-{source.stem.split('.')[0]}"
    if not source.exists():
        return import_dataset(
            settings, endpoint, kind, name, source, say=say, skip_bad_images=skip_bad_images
        )
    client = s3_client(settings, endpoint)
    fingerprint = source_fingerprint(kind, source, dockerhost.image_id(settings.image_uri))
    if _imported_fingerprint(client, settings.bucket, name) == fingerprint and exists(
        settings, endpoint, name
    ):
        uri = dataset_uri(settings, name)
        say(f"Reusing {uri}: {source} has not changed since it was imported.")
        return uri
    uri = import_dataset(
        settings, endpoint, kind, name, source, say=say, skip_bad_images=skip_bad_images
    )
    record = {"fingerprint": fingerprint, "source": str(source.resolve()), "uri": uri}
    client.put_object(
        Bucket=settings.bucket,
        Key=f"{IMPORTS_PREFIX}/{name}.json",
        Body=json.dumps(record).encode(),
        ContentType="application/json",
    )
    return uri


def resolve_input(
    settings: Settings,
    endpoint: str,
    kind: str,
    data: str | None,
    say: Any = print,
    skip_bad_images: bool = False,
) -> str:
    """The InputData URI for a run: an S3 URI as given, else an import (reused when present)."""
    if data and data.startswith("s3://"):
        return data if data.endswith("/") else data + "/"
    if data:
        return import_local_source(
            settings, endpoint, kind, Path(data).expanduser(), say, skip_bad_images=skip_bad_images
        )
    if exists(settings, endpoint, kind):
        return dataset_uri(settings, kind)
    if kind not in ("digits", "cifar10"):
        raise LocalMlopsError(f"the {kind} dataset needs --data PATH_OR_URI")
    return import_dataset(settings, endpoint, kind, say=say)
