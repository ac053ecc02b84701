"""durable_s3: every S3 write a client saw succeed survives a SIGKILL of the emulator."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from boto3.s3.transfer import TransferConfig

from durable_s3.server import Change, change_of
from durable_s3.store import ObjectStore, StoredObject
from local_mlops.devenv.emulator import MotoServer, restore_report

BUCKET = "durable-test"


def client(url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="local-mlops",
        aws_secret_access_key="local-mlops",
        region_name="us-east-1",
    )


def everything(s3: Any, bucket: str = BUCKET) -> dict[str, tuple[bytes, str, str, dict]]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            got = s3.get_object(Bucket=bucket, Key=obj["Key"])
            found[obj["Key"]] = (
                got["Body"].read(),
                got["ContentType"],
                got["ETag"],
                got["Metadata"],
            )
    return found


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "s3-data"


@pytest.fixture
def server(data: Path) -> Iterator[MotoServer]:
    first = MotoServer("127.0.0.1", data_dir=data)
    first.start()
    yield first
    first.stop()


def kill(server: MotoServer) -> None:
    assert server._process is not None
    os.kill(server._process.pid, signal.SIGKILL)
    server._process.wait()


def test_every_kind_of_write_survives_a_kill(server: MotoServer, data: Path) -> None:
    s3 = client(server.url)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(
        Bucket=BUCKET,
        Key="runs/a.json",
        Body=b"{}",
        ContentType="application/json",
        Metadata={"made-by": "test"},
    )
    s3.put_object(Bucket=BUCKET, Key="odd key/ü?&=.txt", Body=b"odd")
    s3.put_object(Bucket=BUCKET, Key="dir/", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="dir/inside", Body=b"both a folder and a file")
    s3.put_object(Bucket=BUCKET, Key="registry/v1.json", Body=b"v1", IfNoneMatch="*")
    big = os.urandom(11 * 1024 * 1024)
    (data.parent / "big").write_bytes(big)
    s3.upload_file(
        str(data.parent / "big"),
        BUCKET,
        "shards/big.tar",
        Config=TransferConfig(
            multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
        ),
    )
    s3.copy_object(
        Bucket=BUCKET, Key="copied.json", CopySource={"Bucket": BUCKET, "Key": "runs/a.json"}
    )
    for n in range(3):
        s3.put_object(Bucket=BUCKET, Key=f"gone/{n}", Body=b"x")
    s3.delete_object(Bucket=BUCKET, Key="gone/0")
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "gone/1"}, {"Key": "gone/2"}]})
    s3.put_object(
        Bucket=BUCKET,
        Key="runs/a.json",
        Body=b'{"Status": "Succeeded"}',
        ContentType="application/json",
        Metadata={"made-by": "test"},
    )
    url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "presigned"})
    direct = requests.Session()
    direct.trust_env = False  # straight to the emulator, whatever proxy the environment names
    assert direct.put(url, data=b"by url", headers={"Content-Type": "text/plain"}).ok
    s3.create_bucket(Bucket="short-lived")
    s3.put_object(Bucket="short-lived", Key="k", Body=b"x")
    s3.delete_object(Bucket="short-lived", Key="k")
    s3.delete_bucket(Bucket="short-lived")
    # a multipart upload cut short changes nothing
    s3.create_multipart_upload(Bucket=BUCKET, Key="unfinished")
    before = everything(s3)

    kill(server)
    again = MotoServer("127.0.0.1", data_dir=data)
    again.start()
    try:
        s3 = client(again.url)
        after = everything(s3)
        assert after == before
        assert set(after) == {
            "runs/a.json",
            "odd key/ü?&=.txt",
            "dir/",
            "dir/inside",
            "registry/v1.json",
            "shards/big.tar",
            "copied.json",
            "presigned",
        }
        assert after["runs/a.json"][0] == b'{"Status": "Succeeded"}'
        assert after["runs/a.json"][1:] == before["runs/a.json"][1:]
        assert after["shards/big.tar"][0] == big and after["shards/big.tar"][2].endswith('-3"')
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [BUCKET]
        # a conditional write still sees the restored object
        with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
            s3.put_object(Bucket=BUCKET, Key="registry/v1.json", Body=b"again", IfNoneMatch="*")
        restored = restore_report(again.url)
        assert restored["objects"] == len(before) and restored["buckets"] == 1
    finally:
        again.stop()


def test_requests_are_sorted_into_what_they_change() -> None:
    def environ(method: str, path: str, query: str = "", auth: str = "") -> dict[str, str]:
        return {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "HTTP_AUTHORIZATION": auth,
        }

    s3_auth = "AWS4-HMAC-SHA256 Credential=AK/20261201/us-east-1/s3/aws4_request, Signed..."
    sm_auth = s3_auth.replace("/s3/", "/sagemaker/")
    assert change_of(environ("GET", "/b/k")) is None
    assert change_of(environ("PUT", "/b/a%20b", auth=s3_auth)) == Change("key", "b", "a b")
    assert change_of(environ("PUT", "/b/k", "partNumber=1&uploadId=x")) is None
    assert change_of(environ("POST", "/b/k", "uploads")) is None
    assert change_of(environ("POST", "/b/k", "uploadId=x")) == Change("key", "b", "k")
    assert change_of(environ("DELETE", "/b/k", "uploadId=x")) is None
    assert change_of(environ("POST", "/b", "delete")) == Change("bucket-keys", "b")
    assert change_of(environ("PUT", "/b")) == Change("bucket", "b")
    assert change_of(environ("PUT", "/b", "versioning")) is None
    assert change_of(environ("POST", "/", auth=sm_auth)) is None
    assert change_of(environ("POST", "/b/k", auth=sm_auth)) is None


def test_a_half_written_object_is_never_restored(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path, fsync=False)
    store.put_bucket("b", "123456789012", "us-east-1")
    store.put_object("b", StoredObject("whole", b"complete"))
    store.put_object("b", StoredObject("cut", b"0123456789"))
    cut = next(p for p in (tmp_path / "b" / "objects").glob("*/*") if b'"cut"' in p.read_bytes())
    cut.write_bytes(cut.read_bytes()[:-3])  # as if the disk lost the tail
    leftover = cut.parent / ".tmp-killed-writer"
    leftover.write_bytes(b"partial")
    assert [o.key for o in store.objects("b")] == ["whole"]
    assert not leftover.exists()
