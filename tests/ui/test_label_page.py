"""The labeling page in a real browser: keyboard labeling, undo, resume, the manifest on disk."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_mlops.labeling import FolderSource, LabelingServer, LabelingSession

pytestmark = pytest.mark.ui
SCREENSHOT = Path(os.environ.get("LOCAL_MLOPS_UI_SCREENSHOT", "/tmp/local-mlops-label.png"))


def tiny_png(size: int, seed: int) -> bytes:
    """A small RGB PNG with a visible pattern (so pixelated scaling shows)."""
    rows = []
    for y in range(size):
        row = bytearray(b"\x00")
        for x in range(size):
            on = (x // 2 + y // 2 + seed) % 3 == 0
            row += bytes((230, 80 + 40 * seed, 40) if on else (30, 60, 120 + 30 * seed))
        rows.append(bytes(row))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"".join(rows))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "unlabeled"
    root.mkdir()
    for index in range(4):
        (root / f"img{index}.png").write_bytes(tiny_png(16, index))
    (root / "img4-corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    return root


@pytest.fixture
def serve(folder: Path) -> Iterator[Any]:
    servers: list[tuple[LabelingServer, LabelingSession]] = []

    def start() -> str:
        for server, session in servers:  # the command stopped, then run again
            server.stop()
            session.close()
        session = LabelingSession(FolderSource(folder), ["cat", "dog", "bird"], "ui-test")
        session.open()
        server = LabelingServer(session)
        server.start_background()
        servers.append((server, session))
        return server.url

    yield start
    for server, session in servers:
        server.stop()
        session.close()


def wait_idle(page: Any) -> None:
    page.wait_for_selector("body[data-idle=true]")


def lines(folder: Path) -> list[tuple[str, int, str]]:
    text = (folder / "manifest.jsonl").read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    return [(e["source-ref"], e["label"], e["label-metadata"]["class-name"]) for e in entries]


def test_label_with_the_keyboard_undo_and_resume(page: Any, serve: Any, folder: Path) -> None:
    page.goto(serve())
    wait_idle(page)
    progress = page.locator("#progress")
    assert progress.inner_text() == "0 of 5 labeled"
    assert page.locator("#name").inner_text() == "img0.png"

    page.keyboard.press("1")  # img0 -> cat (digit)
    page.keyboard.press("d")  # img1 -> dog (first letter)
    page.keyboard.press("3")  # img2 -> bird
    wait_idle(page)
    assert progress.inner_text() == "3 of 5 labeled"
    page.keyboard.press("u")  # undo bird: back on img2
    wait_idle(page)
    assert page.locator("#name").inner_text() == "img2.png"
    assert progress.inner_text() == "2 of 5 labeled"
    page.keyboard.press("b")  # img2 -> bird again, with the letter
    wait_idle(page)
    page.keyboard.press("Backspace")  # and undo once more, with Backspace
    wait_idle(page)
    assert lines(folder) == [("img0.png", 0, "cat"), ("img1.png", 1, "dog")]

    # The corrupt file shows an error tile and can be skipped.
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.locator("#name").inner_text() == "img4-corrupt.png"
    page.wait_for_selector("#error:visible")
    assert "Cannot show img4-corrupt.png" in page.locator("#error").inner_text()
    page.keyboard.press(" ")
    wait_idle(page)
    assert page.locator("#progress").inner_text() == "2 of 5 labeled · 1 skipped"

    # Reload: the page resumes at the first image neither labelled nor skipped.
    page.reload()
    wait_idle(page)
    assert page.locator("#name").inner_text() == "img2.png"
    assert progress.inner_text() == "2 of 5 labeled · 1 skipped"
    page.keyboard.press("c")  # img2 -> cat; moves on to img3
    wait_idle(page)
    assert page.locator("#name").inner_text() == "img3.png"
    page.wait_for_function("document.getElementById('img').complete")
    page.screenshot(path=str(SCREENSHOT))
    assert lines(folder)[-1] == ("img2.png", 0, "cat")


def test_resume_after_a_server_restart(page: Any, serve: Any, folder: Path) -> None:
    page.goto(serve())
    wait_idle(page)
    page.keyboard.press("2")
    page.keyboard.press("2")
    wait_idle(page)
    page.goto(serve())  # a new server process on the same folder (the command run again)
    wait_idle(page)
    assert page.locator("#name").inner_text() == "img2.png"
    assert page.locator("#progress").inner_text() == "2 of 5 labeled"
    page.keyboard.press("u")  # undo reaches across the restart
    wait_idle(page)
    assert lines(folder) == [("img0.png", 1, "dog")]
