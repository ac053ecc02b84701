"""Bad input never takes the server down or hangs it: each case, then a good request answered right."""

from __future__ import annotations

import base64
import io
import json
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from artifacts import write_artifact
from PIL import Image
from serving_helpers import (
    IMAGE_SIZE,
    Health,
    Running,
    invoke,
    npy_bytes,
    parse_raw,
    png_bytes,
    raw_exchange,
    read_response,
    request,
    running_server,
)

LIMIT_MB = 1
READ_TIMEOUT = 0.5


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_artifact(tmp_path_factory.mktemp("model"), IMAGE_SIZE, onnx=True)


@pytest.fixture(scope="module")
def health(model_dir: Path) -> Health:
    return Health(model_dir)


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[Running]:
    env = {"SAGEMAKER_MAX_PAYLOAD_IN_MB": str(LIMIT_MB), "MLOPS_READ_TIMEOUT_SECONDS": "0.5"}
    with running_server(model_dir, env) as running:
        yield running


@pytest.fixture()
def port(server: Running, health: Health) -> Iterator[int]:
    """The server's port; after each test the server must still answer a good request right."""
    yield server.port
    health.check(server.port)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int, rows: int | None = None) -> bytes:
    """A grayscale PNG of zeros: a few KB that decode to width*height bytes (``rows`` of them
    present, to make a header that claims a giant size quickly)."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    count = height if rows is None else rows
    data = b"".join(compressor.compress(row) for _ in range(count)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data)
        + png_chunk(b"IEND", b"")
    )  # fmt: skip


def other_format(kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (10, 20, 30)).save(buffer, format=kind)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty request body"),
        (png_bytes()[:60], "cannot be decoded"),
        (png_bytes()[:12], "not a readable PNG or JPEG"),
        (np.random.default_rng(0).bytes(3000), "not a readable PNG or JPEG"),
        (b"this is a text file, not a PNG\n" * 20, "not a readable PNG or JPEG"),
        (other_format("GIF"), "not a readable PNG or JPEG"),
        (other_format("BMP"), "not a readable PNG or JPEG"),
        (other_format("TIFF"), "not a readable PNG or JPEG"),
    ],
    ids=["empty", "truncated", "header-only", "random", "text", "gif", "bmp", "tiff"],
)
def test_unreadable_image_is_400(port: int, body: bytes, message: str) -> None:
    status, answer = invoke(port, body, "image/png")
    assert status == 400 and message in answer["error"]


def test_decompression_bomb_is_refused_before_decoding(port: int) -> None:
    bomb = png_bomb(5000, 5000)  # 25 megapixels from ~25 KB
    assert len(bomb) < 100_000
    status, answer = invoke(port, bomb, "image/png")
    assert status == 400 and "5000x5000 pixels, more than the 16,777,216" in answer["error"]


def test_header_claiming_400_megapixels_is_refused(port: int) -> None:
    status, answer = invoke(port, png_bomb(20000, 20000, rows=10), "application/x-image")
    assert status == 400 and "too large to decode" in answer["error"]


def test_several_bombs_in_one_json_request(port: int) -> None:
    good = base64.b64encode(png_bytes()).decode()
    bomb = base64.b64encode(png_bomb(5000, 5000)).decode()
    body = json.dumps({"instances": [good, bomb, bomb, {"b64": bomb}, bomb]}).encode()
    started = time.monotonic()
    status, answer = invoke(port, body, "application/json")
    assert status == 400 and "instance 1 is 5000x5000 pixels" in answer["error"]
    assert time.monotonic() - started < 5  # refused from the headers, nothing decoded


def test_payload_over_the_limit_is_413(port: int) -> None:
    status, answer = invoke(port, b"\0" * (LIMIT_MB * 1024 * 1024 + 1), "image/png")
    assert status == 413 and "exceeds the limit of 1048576 bytes" in answer["error"]


def test_413_comes_from_content_length_before_the_body(port: int) -> None:
    """The answer arrives though only 10 of the announced 500 MB were sent."""
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
        b"Content-Length: 500000000\r\n\r\n0123456789"
    )
    status, headers, answer = parse_raw(raw_exchange(port, head))
    assert status == 413 and headers["connection"] == "close"
    assert "payload of 500000000 bytes" in answer["error"]


def test_chunked_body_over_the_limit_is_413(port: int) -> None:
    chunk = b"\0" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    status, _, answer = parse_raw(raw_exchange(port, head + body))
    assert status == 413


def test_missing_content_length_is_411(port: int) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n\r\n"
    status, _, answer = parse_raw(raw_exchange(port, head))
    assert status == 411 and "Content-Length is required" in answer["error"]


@pytest.mark.parametrize("length", [b"-5", b"abc", b"12x", b"1e3"])
def test_bad_content_length_is_400_json(port: int, length: bytes) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: "
    status, headers, answer = parse_raw(raw_exchange(port, head + length + b"\r\n\r\nxx"))
    assert status == 400 and headers["connection"] == "close"
    assert "Content-Length" in answer["error"]


def test_short_body_times_out_with_408(port: int, health: Health) -> None:
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
        b"Content-Length: 1000\r\n\r\n" + png_bytes()[:100]
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
        stalled.sendall(head)
        health.check(port)  # answered while the stalled request waits
        answer = stalled.recv(65536)
    status, headers, body = parse_raw(answer)
    assert status == 408 and headers["connection"] == "close"
    assert "within 0.5 s (100 of 1000 bytes)" in body["error"]
    assert time.monotonic() - started < READ_TIMEOUT + 5


def test_many_stalled_clients_do_not_block_good_ones(port: int, health: Health) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 50\r\n\r\n"
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
    try:
        for sock in sockets:
            sock.sendall(head)
        health.check(port)
        assert all(parse_raw(read_response(sock))[0] == 408 for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


def test_client_that_leaves_mid_body_frees_its_request(port: int) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 999\r\n\r\nab"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", 'JSON body must be {"instances"'),
        (b'{"instances": []}', 'JSON body must be {"instances"'),
        (b'{"inputs": ["x"]}', 'JSON body must be {"instances"'),
        (b'{"instances": [42]}', "instance 0 is a int"),
        (b'{"instances": ["%%%not base64"]}', "instance 0 is not valid base64"),
        (b'{"instances": [{"b64": "aGVsbG8="}]}', "instance 0 is not a readable PNG or JPEG"),
        (b'{"instances": [[[1, 2], [3]]]}', "not a rectangular array"),
        (b'{"instances": [[[["a", "b", "c"]]]]}', "holds <U1 values"),
        (b'{"instances": [[[[1, 2, 3]]]]}', "has shape (1, 1, 3)"),
        (b'{"instances": [[[[300, 0, 0]]]]}', "integers outside 0..255"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
    ids=[
        "syntax",
        "list",
        "empty",
        "wrong-key",
        "number",
        "base64",
        "not-image",
        "ragged",
        "strings",
        "shape",
        "range",
        "deep",
    ],  # fmt: skip
)
def test_bad_json_is_400(port: int, body: bytes, message: str) -> None:
    status, answer = invoke(port, body, "application/json")
    assert status == 400 and message in answer["error"]


def test_nan_in_json_array_is_400(port: int) -> None:
    pixels = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 0.5).tolist()
    pixels[0][0][0] = float("nan")
    status, answer = invoke(port, json.dumps({"instances": [pixels]}).encode(), "application/json")
    assert status == 400 and "NaN or infinite" in answer["error"]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((IMAGE_SIZE + 1, IMAGE_SIZE, 3), np.uint8), "has shape (9, 8, 3)"),
        (np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8), "has shape (8, 8)"),
        (np.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 4), np.uint8), "has shape (2, 8, 8, 4)"),
        (np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8), "has shape (0, 8, 8, 3)"),
        (np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.int64), "dtype int64 is not one of"),
        (np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.complex64), "dtype complex64"),
        (np.full((IMAGE_SIZE, IMAGE_SIZE, 3), np.nan, np.float32), "NaN or infinite"),
        (np.full((IMAGE_SIZE, IMAGE_SIZE, 3), np.inf, np.float64), "NaN or infinite"),
        (np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 255.0, np.float32), "outside 0..1"),
    ],
    ids=["height", "2d", "channels", "empty", "int64", "complex", "nan", "inf", "range"],
)
def test_bad_npy_array_is_400(port: int, array: np.ndarray, message: str) -> None:
    status, answer = invoke(port, npy_bytes(array), "application/x-npy")
    assert status == 400 and message in answer["error"]


def test_npy_with_missing_or_extra_data_is_400(port: int) -> None:
    good = npy_bytes(np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8))
    for body in (good[:-10], good + b"extra"):
        status, answer = invoke(port, body, "application/x-npy")
        assert status == 400 and "announces 192 bytes of data" in answer["error"]


def test_pickled_object_array_is_refused(port: int) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    status, answer = invoke(port, buffer.getvalue(), "application/x-npy")
    assert status == 400 and "dtype object" in answer["error"]


def test_not_npy_is_400(port: int) -> None:
    status, answer = invoke(port, b"\x93NUMPY garbage", "application/x-npy")
    assert status == 400 and "not a readable .npy array" in answer["error"]


@pytest.mark.parametrize("content_type", ["text/plain", "image/gif", "application/octet-stream"])
def test_wrong_content_type_is_415(port: int, content_type: str) -> None:
    status, answer = invoke(port, png_bytes(), content_type)
    assert status == 415 and f"unsupported Content-Type {content_type!r}" in answer["error"]


def test_missing_content_type_is_415(port: int) -> None:
    status, answer, _ = request(port, "POST", "/invocations", png_bytes())
    assert status == 415 and "(none)" in answer["error"]


@pytest.mark.parametrize(("method", "path", "code"), [
    ("GET", "/nope", 404), ("POST", "/invocations/extra", 404), ("GET", "/invocations", 405),
    ("POST", "/ping", 405), ("DELETE", "/execution-parameters", 405),
])  # fmt: skip
def test_unknown_route_or_method(port: int, method: str, path: str, code: int) -> None:
    status, answer, _ = request(port, method, path, b"x" if method == "POST" else None)
    assert status == code and "error" in answer


def test_accept_that_excludes_json_is_406(port: int) -> None:
    status, answer = invoke(port, png_bytes(), "image/png", Accept="text/csv")
    assert status == 406 and "application/json" in answer["error"]


@pytest.mark.parametrize("value", ["top_k=0", "top_k=-1", "top_k=three", "top_k="])
def test_bad_top_k_is_400(port: int, value: str) -> None:
    headers = {"X-Amzn-SageMaker-Custom-Attributes": value}
    status, answer = invoke(port, png_bytes(), "image/png", **headers)
    assert status == 400 and "top_k" in answer["error"]


def test_idle_connection_is_closed_by_the_server(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        started = time.monotonic()
        assert sock.recv(10) == b""  # closed by the server's idle timeout, not ours
    assert time.monotonic() - started < 10
