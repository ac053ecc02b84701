"""S3 access shared by every part: the client (fake credentials on the local target), bucket
creation, existence checks and threaded uploads. Which endpoint to talk to is the emulator's
business (``devenv/emulator.py``); this module only talks to one.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from local_mlops.config import Settings
from local_mlops.targets.base import FAKE_CREDENTIALS, kind_of

__all__ = [
    "FAKE_CREDENTIALS",
    "boto_session",
    "ensure_bucket",
    "object_exists",
    "s3_client",
    "upload_tree",
]

_loader: Any = None
_loader_lock = threading.Lock()


def boto_session(region: str, **kwargs: Any) -> Any:
    """A new boto3 Session that shares this process's botocore loader: the parsed service models
    and endpoint rules, which never change. Each session of its own parses them again (~0.3 s a
    client, a few times a command); credentials, configuration and event handlers stay per
    session, as with ``boto3.Session(region_name=region, **kwargs)``."""
    import boto3
    import botocore.session

    global _loader
    core = botocore.session.get_session()
    with _loader_lock:
        if _loader is None:
            _loader = core.get_component("data_loader")
        else:
            core.register_component("data_loader", _loader)
        session = boto3.Session(botocore_session=core, region_name=region, **kwargs)
        # boto3 appends its own data folder to the loader's search paths for every session.
        _loader.search_paths[:] = list(dict.fromkeys(_loader.search_paths))
    return session


def s3_client(settings: Settings, endpoint_url: str | None) -> Any:
    """A boto3 S3 client for the endpoint, with the credentials the target's S3 takes."""
    from botocore.config import Config

    session = boto_session(settings.region, **kind_of(settings).s3_session_args(settings))
    config = Config(
        retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=3, max_pool_connections=32
    )
    return session.client("s3", endpoint_url=endpoint_url or None, config=config)


def ensure_bucket(settings: Settings, url: str | None) -> None:
    """Create the bucket when missing."""
    from botocore.exceptions import ClientError

    client = s3_client(settings, url)
    try:
        client.head_bucket(Bucket=settings.bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        kwargs: dict[str, Any] = {"Bucket": settings.bucket}
        if settings.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.region}
        client.create_bucket(**kwargs)


def object_exists(client: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def upload_tree(client: Any, bucket: str, files: list[Path], root: Path, prefix: str = "") -> int:
    """Upload files under ``root`` to ``prefix`` + their path relative to ``root``, 16 at a time."""
    lead = f"{prefix.rstrip('/')}/" if prefix else ""

    def push(path: Path) -> None:
        client.upload_file(str(path), bucket, lead + path.relative_to(root).as_posix())

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(push, files))
    return len(files)
