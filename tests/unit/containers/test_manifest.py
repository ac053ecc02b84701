"""Source-ref resolution and manifest parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_container.errors import UserError
from mlops_container.manifest import infer_dataset_uri, load_records, resolve_source_ref


def test_resolve_infers_root_before_images(tmp_path: Path) -> None:
    ref = "s3://bucket/prefix/digits/images/3/digit_0003.png"
    assert infer_dataset_uri(ref) == "s3://bucket/prefix/digits"
    assert resolve_source_ref(ref, tmp_path) == tmp_path / "images" / "3" / "digit_0003.png"


def test_resolve_with_explicit_dataset_uri_and_local_paths(tmp_path: Path) -> None:
    ref = "/data/ds/pics/a/x.png"
    assert resolve_source_ref(ref, tmp_path, "/data/ds/") == tmp_path / "pics" / "a" / "x.png"


def test_resolve_rejects_refs_outside_or_escaping_the_root(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not under the dataset root"):
        resolve_source_ref("s3://other/images/a.png", tmp_path, "s3://bucket/ds")
    with pytest.raises(UserError, match="escapes"):
        resolve_source_ref("s3://bucket/ds/../secret.png", tmp_path, "s3://bucket/ds")
    with pytest.raises(UserError, match="--dataset-uri"):
        resolve_source_ref("s3://bucket/ds/pic.png", tmp_path)


def test_load_records_names_the_bad_line(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text('{"source-ref": "s3://b/images/a/1.png", "label": 0}\n{oops\n')
    with pytest.raises(UserError, match="manifest.jsonl:2"):
        load_records(manifest)


def test_relative_source_ref_resolves_inside_the_folder(tmp_path: Path) -> None:
    from mlops_container.manifest import resolve_source_ref

    assert resolve_source_ref("cats/a.png", tmp_path) == tmp_path / "cats" / "a.png"
    with pytest.raises(UserError, match="escapes"):
        resolve_source_ref("../secret.png", tmp_path)
