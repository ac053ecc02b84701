"""A version's model.tar.gz fetched for a container: extracted once, refused when unsafe."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import pytest

from local_mlops.errors import LocalMlopsError
from local_mlops.serving.fleet import fetch_model, socket_path

sys.path.insert(0, str(Path(__file__).parents[1]))
from capture_helpers import moto_bucket  # noqa: E402


def _archive(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, body in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


def test_the_model_is_extracted_once_per_version(tmp_path: Path) -> None:
    with moto_bucket() as s3:
        entries = {"model.onnx": b"onnx" * 1000, "code/labels.json": b'["a", "b"]'}
        s3.put_object(Bucket="bkt", Key="m/model.tar.gz", Body=_archive(entries))
        folder = fetch_model(s3, "s3://bkt/m/model.tar.gz", tmp_path / "model")
        assert (folder / "model.onnx").read_bytes() == entries["model.onnx"]
        assert (folder / "code" / "labels.json").read_bytes() == entries["code/labels.json"]
        s3.delete_object(Bucket="bkt", Key="m/model.tar.gz")
        # Extracted already: the second call reads nothing from S3.
        assert fetch_model(s3, "s3://bkt/m/model.tar.gz", tmp_path / "model") == folder


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/outside.txt", "a/../../outside.txt"])
def test_an_entry_outside_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    with moto_bucket() as s3:
        s3.put_object(Bucket="bkt", Key="bad.tar.gz", Body=_archive({name: b"x"}))
        with pytest.raises(LocalMlopsError, match="unsafe entry"):
            fetch_model(s3, "s3://bkt/bad.tar.gz", tmp_path / "work" / "model")
    assert not (tmp_path / "work" / "outside.txt").exists()
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "work" / "model" / ".extracted").exists()


def test_a_corrupt_archive_names_the_model(tmp_path: Path) -> None:
    with moto_bucket() as s3:
        s3.put_object(Bucket="bkt", Key="broken.tar.gz", Body=b"not a tar at all")
        with pytest.raises(LocalMlopsError, match="broken.tar.gz is not a readable tar.gz"):
            fetch_model(s3, "s3://bkt/broken.tar.gz", tmp_path / "model")


def test_each_instance_gets_its_own_short_socket_path(tmp_path: Path) -> None:
    one = socket_path(tmp_path / "sock", "local-mlops-digits-v1-abc-0")
    two = socket_path(tmp_path / "sock", "local-mlops-digits-v1-abc-1")
    assert one and two and Path(one).parent != Path(two).parent
    assert (
        Path(one).name == "serve.sock" and Path(one).parent.parent == (tmp_path / "sock").resolve()
    )
    assert socket_path(None, "x") == ""


def test_a_socket_path_over_the_kernels_limit_means_the_port(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    assert socket_path(deep, "local-mlops-digits-v1-abc-0") == ""
