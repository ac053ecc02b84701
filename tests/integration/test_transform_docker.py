"""``local-mlops transform`` for real: local mode's Transform job in the serving image.

A tiny untrained model (3 classes, 16x16, ONNX) is registered as an approved version; a folder
of three images and one corrupt file is scored end to end: uploaded to the emulator's bucket,
one serving container started by local mode, the records posted concurrently, one ``NAME.out``
each downloaded back, the summary counted — and the corrupt file is an error entry, not a
failed job.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from local_mlops import s3 as s3_helpers
from local_mlops.cli.app import app
from local_mlops.config import Settings, load_settings
from local_mlops.devenv.processes import EXECUTION_LABEL
from local_mlops.errors import LocalMlopsError
from local_mlops.stores.registry import LocalModelRegistry

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "containers"))
from artifacts import CLASSES, write_artifact  # noqa: E402  (the container tests' model writer)

pytestmark = pytest.mark.docker
cli = CliRunner()


@pytest.fixture(scope="module")
def registered(
    serving_image: str, s3: tuple[Settings, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    base_settings, url = s3
    work = tmp_path_factory.mktemp("transform-model")
    model_dir = write_artifact(work / "model", image_size=16, onnx=True)
    archive = work / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    env = {
        "LOCAL_MLOPS_STATE_DIR": str(tmp_path_factory.mktemp("transform-state")),
        "LOCAL_MLOPS_S3_ENDPOINT": url,
        "LOCAL_MLOPS_BUCKET": base_settings.bucket,
        "LOCAL_MLOPS_IMAGE_TAG": serving_image.rsplit(":", 1)[1],
        "LOCAL_MLOPS_MODEL_PACKAGE_GROUP": "it-transform",
    }
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)
    settings = load_settings()
    client = s3_helpers.s3_client(settings, url)
    client.upload_file(str(archive), settings.bucket, "it-transform/1/model.tar.gz")
    LocalModelRegistry(client, settings.bucket, settings.region).register(
        settings.model_package_group,
        model_data_url=f"s3://{settings.bucket}/it-transform/1/model.tar.gz",
        image=settings.serving_image_uri,
        approval_status="Approved",
    )
    yield env
    patch.undo()


@pytest.fixture(autouse=True)
def transform_env(registered: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The conftest's per-test state dir would hide the registry: point the CLI back at it."""
    for key, value in registered.items():
        monkeypatch.setenv(key, value)


def images(folder: Path) -> Path:
    (folder / "more").mkdir(parents=True)
    Image.new("RGB", (16, 16), (200, 10, 10)).save(folder / "red.png")
    Image.new("L", (40, 30), 128).save(folder / "grey.jpg", format="JPEG")
    Image.new("RGB", (16, 16), (10, 10, 200)).save(folder / "more" / "blue.png")
    (folder / "broken.png").write_bytes((folder / "red.png").read_bytes()[:40])  # truncated
    return folder


def test_a_folder_is_scored_with_one_out_per_image_and_an_error_entry(tmp_path: Path) -> None:
    out = tmp_path / "scores"
    result = cli.invoke(
        app, ["transform", "--input", str(images(tmp_path / "in")), "--output", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["images"], summary["scored"], summary["errors"]) == (4, 3, 1)
    assert summary["version"] == 1 and sum(summary["classes"].values()) == 3
    assert summary["seconds"] > 0 and summary["images_per_second"] > 0
    [entry] = summary["error_entries"]
    assert entry["name"] == "broken.png" and "image" in entry["error"]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.out"))
    assert written == ["broken.png.out", "grey.jpg.out", "more/blue.png.out", "red.png.out"]
    red = json.loads((out / "red.png.out").read_text())
    [prediction] = red["predictions"]
    assert prediction["label"] in CLASSES and len(prediction["top_k"]) == 3
    assert json.loads((out / "broken.png.out").read_text())["status"] == 400
    # Local mode's serving container is gone once the job has ended.
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={EXECUTION_LABEL}={summary['job_name']}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert left == []


def test_an_unknown_version_is_refused(tmp_path: Path) -> None:
    result = cli.invoke(
        app,
        ["transform", "--input", str(images(tmp_path / "in")), "--output", str(tmp_path / "o"),
         "--version", "9"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "it-transform/9 does not exist" in result.stderr


def test_an_s3_prefix_is_scored_twice_in_one_process(tmp_path: Path) -> None:
    """Object by object (SplitType None); a second job in the same process starts and removes
    its own serving container, with its own settings (``--top``)."""
    settings = load_settings()
    client = s3_helpers.s3_client(settings, settings.s3_endpoint)
    folder = images(tmp_path / "in")
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    for name in names:
        client.upload_file(str(folder / name), settings.bucket, f"it-prefix/in/{name}")
    for run, top in (("first", 3), ("second", 1)):
        output = f"s3://{settings.bucket}/it-prefix/{run}/"
        result = cli.invoke(
            app,
            ["transform", "--input", f"s3://{settings.bucket}/it-prefix/in/", "--output", output,
             "--top", str(top), "--json"],
        )  # fmt: skip
        assert result.exit_code == 0, f"{run} job: {result.output}"
        summary = json.loads(result.stdout)
        assert (summary["images"], summary["scored"], summary["errors"]) == (4, 3, 1), run
        listed = client.list_objects_v2(Bucket=settings.bucket, Prefix=f"it-prefix/{run}/")
        keys = sorted(item["Key"].removeprefix(f"it-prefix/{run}/") for item in listed["Contents"])
        assert keys == [f"{name}.out" for name in names], run
        body = client.get_object(Bucket=settings.bucket, Key=f"it-prefix/{run}/red.png.out")
        [prediction] = json.loads(body["Body"].read())["predictions"]
        assert len(prediction["top_k"]) == top, run


def test_a_killed_serving_container_fails_the_job_with_the_reason(tmp_path: Path) -> None:
    """The container dies mid-job: the job fails at once, saying so, and leaves no container;
    the inputs are untouched."""
    from local_mlops.targets import transform as service

    settings = load_settings()
    client = s3_helpers.s3_client(settings, settings.s3_endpoint)
    body = (images(tmp_path / "in") / "red.png").read_bytes()
    count = 400
    for index in range(count):
        client.put_object(Bucket=settings.bucket, Key=f"it-kill/in/{index:04d}.png", Body=body)
    said: list[str] = []
    killed: list[str] = []

    def job_containers() -> list[str]:
        # The job's name is in the first thing the command says: "Transform job NAME: ...".
        [name] = [m.split()[2].rstrip(":") for m in said if m.startswith("Transform job ")]
        return subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label={EXECUTION_LABEL}={name}"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip

    def kill_on_first_record(done: int, total: int, key: str) -> None:
        if not killed:
            killed.append(key)
            subprocess.run(["docker", "kill", *job_containers()], capture_output=True, check=True)

    with pytest.raises(LocalMlopsError) as failed:
        service.transform(
            settings,
            said.append,
            input_path=f"s3://{settings.bucket}/it-kill/in/",
            output_path=f"s3://{settings.bucket}/it-kill/out/",
            on_record=kill_on_first_record,
        )
    assert killed, "no record was answered before the kill"
    message = str(failed.value)
    assert "stopped answering" in message and "exited with code 137 (killed)" in message
    assert job_containers() == []
    listed = client.list_objects_v2(Bucket=settings.bucket, Prefix="it-kill/in/")
    assert listed["KeyCount"] == count
