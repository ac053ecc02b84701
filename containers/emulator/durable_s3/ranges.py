"""Ranged GETs that cost the bytes of the range, not the whole object.

Why: moto answers ``GET /<bucket>/<key>`` with ``Range: bytes=a-b`` by building the full GET
answer (``FakeKey.value`` copies the whole object out of its buffer) and then slicing it
(``S3Response._handle_range_header``). boto3's ``download_file`` fetches an object over 8 MB in
parallel 8 MB ranges, so each range cost a copy of the whole object: a 94 MB download took
~0.65 s against ~0.2 s for one plain GET, and the SageMaker SDK downloads every processing and
training input that way (a 90 MB model.tar.gz per Evaluate step). Measured in-process on
127.0.0.1 (2 cores, boto3's default TransferConfig): 94 MB ``download_file`` 0.70-0.92 s
before, 0.17-0.28 s with this (one plain GET: 0.11-0.15 s).

How: for a plain ranged GetObject (path-style, no query string, one ``bytes=`` range, nothing that
makes moto's GET answer differ from its HEAD answer), the same request is first sent to moto as a
HEAD without the Range header, so moto decides authorization, conditionals (If-Match,
If-Unmodified-Since, If-Modified-Since) and the response headers. If that HEAD answers 200, only
the requested bytes are read from the key's buffer and the answer is the 206 moto would give:
Content-Range ``bytes a-b/size``, Content-Length of the range, no ``x-amz-checksum-*`` headers
(the same headers and values; only their order differs, user metadata coming first).
Everything else - an error, a 304, an unsatisfiable range (416 InvalidRange), a range that is the
whole object, a bucket with a policy, logging or versioning, an archived object, a CORS request,
If-None-Match (moto's GET and HEAD compare it differently) - is left to moto exactly as before.

moto internals relied on (moto 5.2.5, pinned; ``tests/unit/emulator/test_durable_s3_ranges.py``
compares every answer with moto's own): the arithmetic of ``S3Response._handle_range_header``;
that ``S3Response.head_object`` answers with the headers ``get_object`` sends for a key with a
Content-Type, no version id, no CORS match and no checksum shown; the key name is
``unquote(RAW_URI path)`` minus the bucket (``S3Response.parse_key_name``);
``FakeKey._value_buffer``/``lock``/``size``/``etag``/``metadata``/``storage_class``
(read like ``FakeKey.value`` does, under the lock); ``FakeBucket.policy/logging/
versioning_status``; ``moto.settings.INITIAL_NO_AUTH_ACTION_COUNT`` (IAM auth off).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlparse

StartResponse = Callable[..., Any]

# One range in the only forms moto turns into a 206: ``bytes=a-b``, ``bytes=a-``, ``bytes=-n``.
_RANGE = re.compile(r"bytes=(?:([0-9]+)-([0-9]*)|-([0-9]+))")
_STATUS_206 = "206 PARTIAL CONTENT"  # as moto's Flask app spells it
_ARCHIVED = ("GLACIER", "DEEP_ARCHIVE")  # moto.s3.utils.ARCHIVE_STORAGE_CLASSES: GET refuses them


def byte_range(spec: str, size: int) -> tuple[int, int] | None:
    """First and last byte moto's ``_handle_range_header`` would send for ``spec``.

    None where moto would not answer a 206 for part of the object: an unparsable or
    unsatisfiable range (moto answers 200 or 416 InvalidRange), or a range covering the whole
    object (nothing to save, and moto keeps the checksum headers for it).
    """
    match = _RANGE.fullmatch(spec)
    if match is None:
        return None
    first, last_asked, suffix = match.groups()
    last = size - 1
    if first is not None:
        begin = int(first)
        if begin > last:
            return None  # 416 InvalidRange
        end = last if not last_asked else min(int(last_asked), last)
    else:
        if int(suffix) == 0:
            return None  # 416 InvalidRange
        begin, end = size - min(int(suffix), size), last
    if begin > end:
        return None  # moto treats it as a plain GET
    if begin == 0 and end == last:
        return None  # the whole object
    return begin, end


def _bucket_and_key(environ: dict[str, Any]) -> tuple[str, str] | None:
    """Bucket and key name as moto reads them: the raw path, percent-decoded once."""
    raw = environ.get("RAW_URI")
    if not raw or urlparse(raw).scheme:
        return None
    path = unquote(raw.split("?", 1)[0])
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "" or not parts[1] or parts[1] == "moto-api":
        return None
    return parts[1], "/".join(parts[2:])


def _may_answer(environ: dict[str, Any]) -> bool:
    """A plain ranged GetObject whose moto HEAD answer stands for its GET answer."""
    from moto import settings

    return (
        environ.get("REQUEST_METHOD") == "GET"
        and not environ.get("QUERY_STRING")
        and environ.get("CONTENT_LENGTH") in (None, "", "0")
        and "HTTP_RANGE" in environ
        and "HTTP_IF_NONE_MATCH" not in environ  # GET also matches it unquoted, HEAD does not
        and "HTTP_ORIGIN" not in environ  # GET adds the bucket's CORS headers, HEAD does not
        and math.isinf(settings.INITIAL_NO_AUTH_ACTION_COUNT)  # IAM auth off: GET and HEAD alike
    )


def _plain_key(bucket: Any, name: str) -> Any:
    """The key if its GET answer is its HEAD answer plus the body, else None."""
    from durable_s3.server import _moto_key

    if bucket is None or bucket.policy is not None or bucket.logging:
        return None  # a policy names s3:GetObject, not s3:HeadObject; a log line names the verb
    if bucket.versioning_status is not None:
        return None  # GET and HEAD decide on x-amz-version-id differently
    key = _moto_key(bucket, name)
    if key is None or key.storage_class in _ARCHIVED:
        return None
    if not any(str(header).lower() == "content-type" for header in key.metadata):
        return None  # GET would add content-type: application/xml, HEAD does not
    return key


def _read(key: Any, begin: int, end: int) -> bytes | None:
    """Bytes begin..end of the key, read as ``FakeKey.value`` reads all of them."""
    try:
        with key.lock:
            key._value_buffer.seek(begin)
            data: bytes = key._value_buffer.read(end - begin + 1)
    except ValueError:  # the buffer was closed: the key was replaced meanwhile
        return None
    return data if len(data) == end - begin + 1 else None


class RangedGets:
    """Answers plain ranged GetObject requests with only the range's bytes; see the module doc."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes] | None:
        """The 206 answer, or None: then the caller hands the request to moto unchanged."""
        from durable_s3.server import _moto_bucket, _service_of

        if not _may_answer(environ):
            return None
        names = _bucket_and_key(environ)
        if names is None or _service_of(environ, {}) not in (None, "s3"):
            return None
        bucket = _moto_bucket(names[0])
        key = _plain_key(bucket, names[1])
        span = None if key is None else byte_range(environ["HTTP_RANGE"], key.size)
        if span is None:
            return None  # no such key (moto says 404), or a range moto answers otherwise

        status, headers = self._head(environ)
        if not status.startswith("200"):
            return None  # an error, 304 or 412: moto's GET says it in its own words
        values = {name.lower(): value for name, value in headers}
        if (
            _plain_key(bucket, names[1]) is not key
            or values.get("etag") != key.etag
            or values.get("content-length") != str(key.size)
        ):
            return None  # the key was replaced meanwhile: its answer is not this HEAD's
        begin, end = span
        data = _read(key, begin, end)
        if data is None:
            return None

        answer = []
        for name, value in headers:
            if name.lower().startswith("x-amz-checksum-"):
                continue  # moto drops checksums from a partial answer
            if name.lower() == "content-length":
                value = str(len(data))
            answer.append((name, value))
        answer.append(("content-range", f"bytes {begin}-{end}/{key.size}"))
        start_response(_STATUS_206, answer)
        return [data]

    def _head(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
        """moto's answer to the same request as a HEAD without its Range header."""
        head = dict(environ)
        head["REQUEST_METHOD"] = "HEAD"
        head.pop("HTTP_RANGE", None)
        head["wsgi.input"] = io.BytesIO(b"")
        captured: list[Any] = ["500 INTERNAL SERVER ERROR", []]

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = [status, list(headers)]
            return lambda chunk: None

        result = self.app(head, capture)
        try:
            for _ in result:
                pass
        finally:
            getattr(result, "close", lambda: None)()
        return captured[0], captured[1]
