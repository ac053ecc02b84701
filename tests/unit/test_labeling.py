"""Labeling sessions as a person meets them: labels survive crashes, undo and restarts."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from local_mlops.errors import LocalMlopsError
from local_mlops.labeling import FolderSource, LabelingSession
from local_mlops.labeling.session import JOURNAL_PATH
from mlops_container.manifest import load_records, read_classes


def png(width: int = 4, height: int = 4, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A valid RGB PNG without Pillow."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "pets"
    (root / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "c.png", "sub/d.png"):
        (root / name).write_bytes(png())
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(png())
    return root


_open: list[LabelingSession] = []


def start(folder: Path, classes: list[str] | None = None, base_uri: str = "") -> LabelingSession:
    """Open a session, as `local-mlops label` does (closing the test's earlier ones first)."""
    while _open:
        _open.pop().close()
    session = LabelingSession(FolderSource(folder, base_uri), classes, "pets")
    session.open()
    _open.append(session)
    return session


@pytest.fixture(autouse=True)
def _close_sessions() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def manifest(folder: Path) -> list[dict[str, object]]:
    text = (folder / "manifest.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_manifest_lines_have_the_ground_truth_shape(folder: Path) -> None:
    session = start(folder, ["cat", "dog"])
    assert session.keys == ["a.png", "b.png", "c.png", "sub/d.png"]  # hidden/non-images left out
    session.label("b.png", 1)
    session.label("a.png", 0)
    lines = manifest(folder)
    assert [line["source-ref"] for line in lines] == ["a.png", "b.png"]  # image order
    entry = lines[1]
    assert entry["label"] == 1
    meta = entry["label-metadata"]
    assert isinstance(meta, dict)
    assert meta["class-name"] == "dog" and meta["confidence"] == 1.0
    assert meta["type"] == "groundtruth/image-classification"
    assert meta["human-annotated"] == "yes" and meta["job-name"] == "labeling-job/pets"
    datetime.fromisoformat(str(meta["creation-date"]))
    assert json.loads((folder / "classes.json").read_text()) == ["cat", "dog"]
    # The pipeline's own reader accepts it.
    records = load_records(folder / "manifest.jsonl")
    assert [(r.label, r.class_name) for r in records] == [(0, "cat"), (1, "dog")]
    assert read_classes(folder / "classes.json") == ["cat", "dog"]


def test_base_uri_prefixes_the_source_refs(folder: Path) -> None:
    session = start(folder, ["cat", "dog"], base_uri="s3://bucket/datasets/pets/")
    session.label("sub/d.png", 0)
    assert manifest(folder)[0]["source-ref"] == "s3://bucket/datasets/pets/sub/d.png"


def test_labels_survive_a_crash_in_the_middle_of_a_journal_write(folder: Path) -> None:
    session = start(folder, ["cat", "dog"])
    session.label("a.png", 0)
    session.label("b.png", 1)
    created = manifest(folder)[0]["label-metadata"]
    # The process dies while writing the third action (never confirmed to the page) ...
    journal = folder / JOURNAL_PATH
    with journal.open("ab") as handle:
        handle.write(b'{"op":"label","key":"c.png","la')
    (folder / "manifest.jsonl").unlink()  # ... and even before any manifest existed.

    again = start(folder)  # no --classes: they come from the journal
    assert again.notes and "interrupted" in again.notes[0]
    assert [(line["source-ref"], line["label"]) for line in manifest(folder)] == [
        ("a.png", 0),
        ("b.png", 1),
    ]
    assert manifest(folder)[0]["label-metadata"] == created  # original creation-date kept
    assert journal.read_bytes().endswith(b"\n")
    again.label("c.png", 0)
    assert len(start(folder).labels) == 3  # the repaired journal takes new lines cleanly


def test_a_corrupt_line_inside_the_journal_is_an_error_naming_it(folder: Path) -> None:
    start(folder, ["cat", "dog"]).label("a.png", 0)
    journal = folder / JOURNAL_PATH
    journal.write_text(journal.read_text().replace('"op":"label"', '"op":"label', 1))
    with pytest.raises(LocalMlopsError, match="line 2 of the labeling journal") as caught:
        start(folder)
    assert caught.value.fix and "delete line 2" in caught.value.fix


def test_undo_is_journaled_and_survives_a_restart(folder: Path) -> None:
    session = start(folder, ["cat", "dog"])
    session.label("a.png", 0)
    session.label("b.png", 1)
    session.label("b.png", 0)  # change of mind
    undone = session.undo()
    assert undone == {"op": "label", "item": {"key": "b.png", "label": 1, "skipped": False}}
    assert [line["label"] for line in manifest(folder)] == [0, 1]

    again = start(folder)
    assert again.item("b.png")["label"] == 1
    again.undo()  # the history survives the restart too
    again.undo()
    assert again.undo() is None  # nothing left
    assert manifest(folder) == []
    assert start(folder).labels == {}


def test_skip_resume_position_and_undo_of_a_skip(folder: Path) -> None:
    session = start(folder, ["cat", "dog"])
    assert session.resume_position() == 0
    session.label("a.png", 0)
    session.skip("b.png")
    session = start(folder)
    assert session.resume_position() == 2  # where the person left off
    assert session.undo() == {
        "op": "skip",
        "item": {"key": "b.png", "label": None, "skipped": False},
    }
    session = start(folder)
    assert session.resume_position() == 1
    for key in ("b.png", "c.png", "sub/d.png"):
        session.skip(key)
    session = start(folder)
    assert session.resume_position() == 1  # all seen: back to the first unlabeled
    assert session.counts() == {"labeled": 1, "skipped": 3, "total": 4}


def test_one_labeling_process_per_folder(folder: Path) -> None:
    start(folder, ["cat", "dog"])
    second = LabelingSession(FolderSource(folder), None, "pets")
    with pytest.raises(LocalMlopsError, match="already being labelled") as caught:
        second.open()
    assert caught.value.fix and "Ctrl-C" in caught.value.fix


def test_the_manifest_is_replaced_atomically(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = start(folder, ["cat", "dog"])
    session.label("a.png", 0)
    before = (folder / "manifest.jsonl").read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(LocalMlopsError, match="saved in the journal"):
        session.label("b.png", 1)
    assert (folder / "manifest.jsonl").read_bytes() == before  # old version, whole
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # no litter
    monkeypatch.undo()
    assert len(manifest(start(folder).source.workdir)) == 2  # the journal had it: rebuilt


def test_an_existing_manifest_is_adopted_and_backed_up(folder: Path) -> None:
    (folder / "classes.json").write_text('["cat", "dog"]')
    (folder / "manifest.jsonl").write_text(
        json.dumps({"source-ref": "c.png", "label": 1, "label-metadata": {"class-name": "dog"}})
        + "\n"
    )
    session = start(folder)
    assert session.item("c.png")["label"] == 1
    assert any("adopted 1 label" in note for note in session.notes)
    assert list((folder / ".labeling").glob("manifest-before-*.jsonl"))
    assert session.undo() is None  # adopted labels are not an action of this person


def test_classes_can_grow_at_the_end_but_not_change(folder: Path) -> None:
    start(folder, ["cat", "dog"]).label("a.png", 1)
    assert start(folder, ["cat", "dog", "bird"]).classes == ["cat", "dog", "bird"]
    assert start(folder).classes == ["cat", "dog", "bird"]
    with pytest.raises(LocalMlopsError, match="can only be added at the end"):
        start(folder, ["dog", "cat"])


@pytest.mark.parametrize(
    ("classes", "message"),
    [(["cat"], "at least two"), (["cat", "dog", "cat"], "duplicate"), (None, "no classes")],
)
def test_bad_classes_are_errors_with_a_fix(
    folder: Path, classes: list[str] | None, message: str
) -> None:
    with pytest.raises(LocalMlopsError, match=message) as caught:
        start(folder, classes)
    assert caught.value.fix


def test_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LocalMlopsError, match="no images found"):
        start(tmp_path, ["cat", "dog"])


def test_an_s3_prefix_is_labelled_and_the_manifest_uploaded_next_to_it(tmp_path: Path) -> None:
    import boto3
    from moto import mock_aws

    from local_mlops.labeling import S3Source

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data")
        for key in ("raw/x.png", "raw/y.png", "raw/readme.txt", "other/z.png"):
            client.put_object(Bucket="data", Key=key, Body=png())
        source = S3Source(client, "s3://data/raw", tmp_path / "state")
        session = LabelingSession(source, ["cat", "dog"], "raw")
        session.open()
        assert session.keys == ["x.png", "y.png"] and source.read("x.png") == png()
        session.label("y.png", 1)
        summary = session.close()
        assert summary["manifest"] == "s3://data/raw/manifest.jsonl"
        body = client.get_object(Bucket="data", Key="raw/manifest.jsonl")["Body"].read()
        assert json.loads(body)["source-ref"] == "s3://data/raw/y.png"
        assert json.loads(
            client.get_object(Bucket="data", Key="raw/classes.json")["Body"].read()
        ) == ["cat", "dog"]
        with pytest.raises(OSError, match="cannot read"):
            source.read("gone.png")
