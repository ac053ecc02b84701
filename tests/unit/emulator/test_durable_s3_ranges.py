"""durable_s3 answers a ranged GET with the range's bytes only, and says what moto alone says.

Two WSGI servers run in this process over the same moto backend: moto's own app, and moto behind
``DurableS3``. Every answer of the middleware is compared with moto's answer to the same request.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3.exceptions import InvalidRange
from moto.s3.models import FakeKey
from moto.s3.responses import S3Response
from werkzeug.serving import make_server

from durable_s3 import ranges
from durable_s3.server import _moto_bucket, _moto_key, make_app

BUCKET = "durable-ranges"
SMALL = "runs/small.json"  # one PUT, with metadata
BIG = "models/model.tar.gz"  # over 8 MB: download_file fetches it in ranges, uploaded in parts
SMALL_BODY = os.urandom(100_000 + 7)
BIG_BODY = os.urandom(20 * 1024 * 1024 + 13)
UNSTABLE_HEADERS = ("date", "x-amzn-requestid")  # differ between any two answers


@dataclass
class Servers:
    moto: Any  # a boto3 S3 client of moto alone
    durable: Any  # a boto3 S3 client of moto behind DurableS3


def _client(url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="local-mlops",
        aws_secret_access_key="local-mlops",
        region_name="us-east-1",
    )


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("S3_IGNORE_SUBDOMAIN_BUCKETNAME", "true")  # what make_app sets for the server
        durable_app = make_app(str(tmp_path_factory.mktemp("s3-data")), fsync=False)
    running = []
    for app in (DomainDispatcherApplication(create_backend_app), durable_app):
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        running.append(server)
    moto, durable = (_client(f"http://127.0.0.1:{s.server_port}") for s in running)
    durable.create_bucket(Bucket=BUCKET)
    durable.put_object(
        Bucket=BUCKET,
        Key=SMALL,
        Body=SMALL_BODY,
        ContentType="application/json",
        Metadata={"made-by": "test"},
    )
    source = tmp_path_factory.mktemp("source") / "model.tar.gz"
    source.write_bytes(BIG_BODY)
    durable.upload_file(str(source), BUCKET, BIG)  # multipart: 8 MB parts
    try:
        yield Servers(moto=moto, durable=durable)
    finally:
        for server in running:
            server.shutdown()
            server.server_close()


@pytest.fixture
def value_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the keys whose whole body (``FakeKey.value``) was read."""
    reads: list[str] = []
    whole = FakeKey.value

    def counted(key: FakeKey) -> bytes:
        reads.append(key.name)
        return whole.fget(key)  # type: ignore[attr-defined,no-any-return]

    monkeypatch.setattr(FakeKey, "value", property(counted, whole.fset))  # type: ignore[attr-defined]
    return reads


def _answer(s3: Any, **params: Any) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (but the per-answer ones) and body of a GetObject, or of its error."""
    try:
        got = s3.get_object(Bucket=BUCKET, **params)
        body = got["Body"].read()
        meta = got["ResponseMetadata"]
    except ClientError as error:
        body = error.response["Error"]["Code"].encode()
        meta = error.response["ResponseMetadata"]
    headers = {k: v for k, v in meta["HTTPHeaders"].items() if k not in UNSTABLE_HEADERS}
    return meta["HTTPStatusCode"], headers, body


def _ranges(size: int) -> list[tuple[str, int, int]]:
    """Range header, first and last byte expected."""
    return [
        ("bytes=0-99", 0, 99),  # first bytes
        ("bytes=5000-70000", 5000, 70000),  # middle
        (f"bytes={size - 1000}-", size - 1000, size - 1),  # open-ended
        ("bytes=-4321", size - 4321, size - 1),  # suffix
        (f"bytes={size - 50}-{size + 10_000}", size - 50, size - 1),  # past the end: clipped
        (f"bytes={size - 1}-{size - 1}", size - 1, size - 1),  # the last byte
    ]


@pytest.mark.parametrize("key, body", [(SMALL, SMALL_BODY), (BIG, BIG_BODY)], ids=["put", "mpu"])
def test_a_ranged_get_answers_what_moto_answers_from_the_range_alone(
    servers: Servers, value_reads: list[str], key: str, body: bytes
) -> None:
    etag = servers.moto.head_object(Bucket=BUCKET, Key=key)["ETag"]
    for header, first, last in _ranges(len(body)):
        for extra in ({}, {"IfMatch": etag}):  # download_file sends If-Match with every range
            value_reads.clear()
            durable = _answer(servers.durable, Key=key, Range=header, **extra)
            assert value_reads == [], header  # the object was not read whole
            assert durable == _answer(servers.moto, Key=key, Range=header, **extra), header
            assert value_reads, "moto alone reads the whole object"

            status, headers, got = durable
            assert status == 206 and got == body[first : last + 1], header
            assert headers["content-range"] == f"bytes {first}-{last}/{len(body)}"
            assert headers["content-length"] == str(last - first + 1)
            assert headers["etag"] == etag
            assert not [name for name in headers if name.startswith("x-amz-checksum-")]


def test_the_boto3_fields_of_a_ranged_get_match_moto(servers: Servers) -> None:
    fields = ("ContentRange", "ContentLength", "ETag", "ContentType", "Metadata", "LastModified")
    for header, _, _ in _ranges(len(SMALL_BODY)):
        durable = servers.durable.get_object(Bucket=BUCKET, Key=SMALL, Range=header)
        moto = servers.moto.get_object(Bucket=BUCKET, Key=SMALL, Range=header)
        assert durable["Body"].read() == moto["Body"].read()
        assert {f: durable[f] for f in fields} == {f: moto[f] for f in fields}
        assert durable["Metadata"] == {"made-by": "test"}


def test_what_the_fast_path_leaves_to_moto_is_answered_by_moto(
    servers: Servers, value_reads: list[str]
) -> None:
    size = len(SMALL_BODY)
    etag = servers.moto.head_object(Bucket=BUCKET, Key=SMALL)["ETag"]
    cases: list[dict[str, Any]] = [
        {"Range": f"bytes={size}-"},  # starts past the end: InvalidRange
        {"Range": f"bytes={size + 5}-{size + 10}"},
        {"Range": "bytes=-0"},
        {"Range": "bytes=0-"},  # the whole object: a 206 of all of it
        {"Range": f"bytes=-{size + 1}"},
        {"Range": "bytes=10-5"},  # moto answers 200 with the whole object
        {"Range": "bytes=0-1,5-6"},
        {"Range": "bytes=5-9", "IfMatch": '"00000000000000000000000000000000"'},
        {"Range": "bytes=5-9", "IfMatch": etag.strip('"')},  # moto's GET accepts it unquoted
        {"Range": "bytes=5-9", "IfNoneMatch": etag},
        {"Range": "bytes=5-9", "IfNoneMatch": etag.strip('"')},  # 304 for GET, 200 for HEAD
        {"Range": "bytes=5-9", "IfUnmodifiedSince": "Sat, 01 Jan 2000 00:00:00 GMT"},
        {"Range": "bytes=5-9", "IfModifiedSince": "Fri, 01 Jan 2100 00:00:00 GMT"},
        {"Range": "bytes=5-9", "VersionId": "null"},
        {"Range": "bytes=5-9", "ResponseContentType": "text/plain"},
    ]
    for params in cases:
        assert _answer(servers.durable, Key=SMALL, **params) == _answer(
            servers.moto, Key=SMALL, **params
        ), params


def test_a_key_without_a_content_type_is_left_to_moto(
    servers: Servers, value_reads: list[str]
) -> None:
    """moto's GET then says application/xml, which its HEAD does not say."""
    servers.durable.put_object(Bucket=BUCKET, Key="bare", Body=b"0123456789")
    _moto_key(_moto_bucket(BUCKET), "bare").set_metadata({}, replace=True)
    value_reads.clear()  # the write's own persisting
    durable = _answer(servers.durable, Key="bare", Range="bytes=2-4")
    assert durable == _answer(servers.moto, Key="bare", Range="bytes=2-4")
    assert durable[1]["content-type"] == "application/xml" and durable[2] == b"234"
    assert value_reads == ["bare", "bare"]


def test_a_range_starting_past_the_end_is_invalid_range_416(servers: Servers) -> None:
    for s3 in (servers.durable, servers.moto):
        with pytest.raises(ClientError) as refused:
            s3.get_object(Bucket=BUCKET, Key=SMALL, Range=f"bytes={len(SMALL_BODY)}-")
        assert refused.value.response["Error"]["Code"] == "InvalidRange"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_if_match_with_a_wrong_etag_still_fails_412(servers: Servers) -> None:
    with pytest.raises(ClientError) as refused:
        servers.durable.get_object(Bucket=BUCKET, Key=BIG, Range="bytes=0-99", IfMatch='"wrong"')
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_a_missing_key_is_still_404_no_such_key(servers: Servers) -> None:
    for params in ({"Key": "no/such/key", "Range": "bytes=0-9"}, {"Key": "no/such/key"}):
        with pytest.raises(ClientError) as refused:
            servers.durable.get_object(Bucket=BUCKET, **params)
        assert refused.value.response["Error"]["Code"] == "NoSuchKey"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert _answer(servers.durable, **params) == _answer(servers.moto, **params)


def test_download_file_of_a_large_object_reads_it_in_ranges_and_gets_it_whole(
    servers: Servers, value_reads: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans: list[tuple[int, int]] = []
    read = ranges._read

    def counted(key: Any, begin: int, end: int) -> bytes | None:
        spans.append((begin, end))
        return read(key, begin, end)

    monkeypatch.setattr(ranges, "_read", counted)
    target = tmp_path / "model.tar.gz"
    servers.durable.download_file(BUCKET, BIG, str(target))  # boto3's default TransferConfig
    assert target.read_bytes() == BIG_BODY
    mib8 = 8 * 1024 * 1024  # TransferConfig's multipart_chunksize
    assert sorted(spans) == [(0, mib8 - 1), (mib8, 2 * mib8 - 1), (2 * mib8, len(BIG_BODY) - 1)]
    assert value_reads == []  # no range read the whole object


def test_a_plain_get_is_left_to_moto(servers: Servers, value_reads: list[str]) -> None:
    got = servers.durable.get_object(Bucket=BUCKET, Key=SMALL)
    assert got["Body"].read() == SMALL_BODY and "ContentRange" not in got
    assert value_reads == [SMALL]


def _moto_range(spec: str, size: int) -> tuple[int, int] | None:
    """What moto's own range handling sends of a ``size``-byte object, as first and last byte."""
    assert size <= 256
    content = bytes(range(size))  # every byte distinct: where a slice starts is plain

    class Request:
        method = "GET"
        headers = {"range": spec}

    try:
        status, _, sent = S3Response()._handle_range_header(
            Request(), {"content-length": str(size)}, content
        )
    except InvalidRange:
        return None
    assert isinstance(sent, bytes)
    if status != 206 or sent == content:
        return None
    first = content.index(sent)
    return first, first + len(sent) - 1


def test_the_range_arithmetic_is_motos() -> None:
    for size in (0, 1, 2, 3, 10, 200):
        specs = ["bytes=", "bytes=-", "bytes=x-1", "bytes=1-x", "bytes=1-2,3-4", "bytes= 1-2"]
        for a in range(size + 3):
            specs += [f"bytes={a}-", f"bytes=-{a}"]
            specs += [f"bytes={a}-{b}" for b in range(size + 3)]
        for spec in specs:
            expected = _moto_range(spec, size)
            got = ranges.byte_range(spec, size)
            if got is not None:  # a range the middleware answers is moto's range
                assert got == expected, (spec, size)
            elif expected is not None:  # one it leaves to moto: only a form moto reads loosely
                assert spec == "bytes= 1-2", (spec, size)
