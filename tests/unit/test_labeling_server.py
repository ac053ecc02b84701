"""The labeling server over real HTTP on 127.0.0.1: the page's API and its errors."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from test_labeling import png

from local_mlops.labeling import FolderSource, LabelingServer, LabelingSession


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "pets"
    root.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (root / name).write_bytes(png())
    (root / "broken.png").write_bytes(b"\x89PNG not really")
    return root


@pytest.fixture
def server(folder: Path) -> Iterator[LabelingServer]:
    session = LabelingSession(FolderSource(folder), ["cat", "dog"], "pets")
    session.open()
    server = LabelingServer(session)
    server.start_background()
    yield server
    server.stop()
    session.close()


def call(
    server: LabelingServer,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json"} if data is not None else {}
    conn.request(method, path, body=data, headers={**sent, **(headers or {})})
    response = conn.getresponse()
    raw = response.read()
    kind = response.getheader("Content-Type") or ""
    conn.close()
    return response.status, json.loads(raw) if kind == "application/json" else raw, kind


def test_page_state_and_images(server: LabelingServer) -> None:
    status, page, kind = call(server, "GET", "/")
    assert status == 200 and kind.startswith("text/html") and b"local-mlops label" in page
    status, state, _ = call(server, "GET", "/api/state")
    assert status == 200
    assert state["classes"] == ["cat", "dog"] and state["position"] == 0
    assert [item["key"] for item in state["items"]] == ["a.png", "b.png", "broken.png", "c.png"]
    status, image, kind = call(server, "GET", "/api/image?key=a.png")
    assert status == 200 and kind == "image/png" and image.startswith(b"\x89PNG")


def test_labeling_over_http_writes_the_manifest(server: LabelingServer, folder: Path) -> None:
    status, reply, _ = call(server, "POST", "/api/label", {"key": "b.png", "label": 1})
    assert status == 200
    assert reply["item"] == {"key": "b.png", "label": 1, "skipped": False}
    assert reply["counts"] == {"labeled": 1, "skipped": 0, "total": 4}
    line = json.loads((folder / "manifest.jsonl").read_text())
    assert line["source-ref"] == "b.png" and line["label-metadata"]["class-name"] == "dog"
    assert call(server, "POST", "/api/skip", {"key": "broken.png"})[0] == 200
    status, reply, _ = call(server, "POST", "/api/undo", {})
    assert reply["undone"]["op"] == "skip"
    status, reply, _ = call(server, "POST", "/api/undo", {})
    assert reply["undone"]["item"] == {"key": "b.png", "label": None, "skipped": False}
    assert (folder / "manifest.jsonl").read_text() == ""
    assert call(server, "POST", "/api/undo", {})[1]["undone"] is None


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "message"),
    [
        ("POST", "/api/label", b"{not json", None, 400, "not valid JSON"),
        ("POST", "/api/label", b"[1]", None, 400, "JSON object"),
        ("POST", "/api/label", {"key": "a.png", "label": 2}, None, 400, "not one of the 2"),
        ("POST", "/api/label", {"key": "a.png", "label": "1"}, None, 400, "class index"),
        ("POST", "/api/label", {"key": "../x.png", "label": 0}, None, 404, "unknown image key"),
        ("POST", "/api/skip", {}, None, 404, "unknown image key"),
        (
            "POST",
            "/api/label",
            {"key": "a.png", "label": 0},
            {"Content-Type": "text/plain"},
            415,
            "must be JSON",
        ),
        ("GET", "/api/image?key=nope.png", None, None, 404, "no image with key"),
        ("GET", "/api/nothing", None, None, 404, "no such endpoint"),
        ("GET", "/api/label", None, None, 405, "not allowed"),
        ("GET", "/api/state", None, {"Host": "evil.example:80"}, 403, "Host header"),
    ],
)
def test_bad_requests_get_clear_json_errors(
    server: LabelingServer,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str] | None,
    status: int,
    message: str,
) -> None:
    got, reply, kind = call(server, method, path, body, headers)
    assert (got, kind) == (status, "application/json")
    assert message in reply["error"] and reply["fix"]
    assert call(server, "GET", "/api/state")[0] == 200  # still serving


def test_an_unreadable_image_is_a_json_error_not_a_crash(
    server: LabelingServer, folder: Path
) -> None:
    (folder / "c.png").unlink()
    status, reply, _ = call(server, "GET", "/api/image?key=" + quote("c.png"))
    assert status == 422 and "cannot read c.png" in reply["error"] and "skip" in reply["fix"]
    assert call(server, "POST", "/api/skip", {"key": "c.png"})[0] == 200


def test_the_command_prints_the_url_and_a_json_summary_on_ctrl_c(folder: Path) -> None:
    program = (
        # SIGINT as at a terminal, even from a background job (which starts it ignored).
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "import typer; from local_mlops.cli.label_cmd import label; "
        "app = typer.Typer(); app.command()(label); app()"
    )
    argv = [sys.executable, "-c", program, str(folder), "--classes", "cat,dog", "--json"]
    env = {**os.environ, "COLUMNS": "200"}
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        assert process.stderr is not None
        url = ""
        deadline = time.monotonic() + 30
        while not url and time.monotonic() < deadline:
            line = process.stderr.readline()
            url = next((w for w in line.split() if w.startswith("http://127.0.0.1:")), "")
        assert url, "the command did not print its URL"
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        body = json.dumps({"key": "a.png", "label": 0})
        conn.request("POST", "/api/label", body, {"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
        conn.close()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["labeled"] == 1 and summary["total"] == 4 and summary["remaining"] == 3
    assert summary["manifest"] == str(folder / "manifest.jsonl") and summary["url"] == url
