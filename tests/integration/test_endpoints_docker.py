"""Endpoints for real: the serving image's ``serve`` in detached containers behind the router.

One tiny model artifact is written once and registered as versions 1 and 2, plus a broken
version 3 (its ONNX model is garbage, so its containers never answer /ping). The tests run in
order on one endpoint: deploy with two instances, call it four ways, check the router goes
through the instances' Unix sockets, update it blue/green under
load with zero failed requests, watch version 3 roll back by itself, then count the captured
records after a SIGTERM and after ``endpoints delete``.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from PIL import Image
from typer.testing import CliRunner

from local_mlops import s3 as s3_helpers
from local_mlops.cli.app import app
from local_mlops.config import Settings, load_settings
from local_mlops.devenv import dockerhost
from local_mlops.serving import capture, daemon, local
from local_mlops.serving import state as st
from local_mlops.serving.fleet import ENDPOINT_LABEL, free_port
from local_mlops.serving.loadgen import SteadyLoad
from local_mlops.stores.registry import LocalModelRegistry

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "containers"))
from artifacts import write_artifact  # noqa: E402  (the container tests' model writer)

pytestmark = pytest.mark.docker
ENDPOINT = "it-digits"
cli = CliRunner()


@dataclass
class Live:
    settings: Settings
    s3: object
    runtime: object
    url: str
    png: bytes
    env: dict[str, str]
    served: list[int] = field(default_factory=lambda: [0])  # successful invocations so far

    def invoke(self, **extra: str) -> dict:
        reply = self.runtime.invoke_endpoint(  # type: ignore[attr-defined]
            EndpointName=ENDPOINT, Body=self.png, ContentType="image/png", **extra
        )
        self.served[0] += 1
        return json.loads(reply["Body"].read())


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def tar_folder(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


@pytest.fixture(scope="module")
def live(serving_image: str, s3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:  # type: ignore[no-untyped-def]
    base_settings, url = s3
    work = tmp_path_factory.mktemp("endpoint-model")
    # A seeded, untrained 3-class model: serving needs a valid artifact, not a good one.
    model_dir = write_artifact(work / "model", image_size=16, onnx=True)
    good = tar_folder(model_dir, work / "model.tar.gz")
    broken_dir = work / "broken"
    broken_dir.mkdir()
    (broken_dir / "model.json").write_text((model_dir / "model.json").read_text())
    (broken_dir / "model.onnx").write_bytes(b"this is not an ONNX model")
    broken = tar_folder(broken_dir, work / "broken.tar.gz")

    state = tmp_path_factory.mktemp("endpoint-state")
    env = {
        "LOCAL_MLOPS_STATE_DIR": str(state),
        "LOCAL_MLOPS_S3_ENDPOINT": url,
        "LOCAL_MLOPS_BUCKET": base_settings.bucket,
        "LOCAL_MLOPS_ROUTER_PORT": str(free_port()),
        "LOCAL_MLOPS_ENDPOINT_NAME": ENDPOINT,
        "LOCAL_MLOPS_IMAGE_TAG": serving_image.rsplit(":", 1)[1],
        "LOCAL_MLOPS_ENDPOINT_PING_TIMEOUT": "240",
    }
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)
    settings = load_settings()
    client = s3_helpers.s3_client(settings, url)
    registry = LocalModelRegistry(client, settings.bucket, settings.region)
    for version, archive in ((1, good), (2, good), (3, broken)):
        key = f"it-models/{version}/model.tar.gz"
        client.upload_file(str(archive), settings.bucket, key)
        registry.register(
            settings.model_package_group,
            model_data_url=f"s3://{settings.bucket}/{key}",
            image=settings.serving_image_uri,
            approval_status="Approved" if version == 1 else "PendingManualApproval",
        )
    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=local.runtime_url(settings),
        region_name=settings.region,
        **s3_helpers.FAKE_CREDENTIALS,
    )
    yield Live(settings, client, runtime, local.runtime_url(settings), png(), env)
    # Leave nothing running: containers of this endpoint and the router.
    for container in dockerhost.docker_client().containers.list(
        all=True, filters={"label": f"{ENDPOINT_LABEL}={ENDPOINT}"}
    ):
        container.remove(force=True)
    daemon.stop_router(settings)
    patch.undo()


@pytest.fixture(autouse=True)
def live_env(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """The conftest's per-test state dir would hide the endpoint: point the CLI back at it."""
    for key, value in live.env.items():
        monkeypatch.setenv(key, value)


def run_cli(*args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_deploy_two_instances_and_list_them(live: Live) -> None:
    code, stdout, stderr = run_cli("deploy", "--instance-count", "2", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["status"] == "InService"
    code, stdout, _ = run_cli("endpoints", "list", "--json")
    [view] = json.loads(stdout)
    assert set(view) == {"name", "status", "version", "variants", "url", "runtime_endpoint_url"}
    assert (view["name"], view["status"], view["version"]) == (ENDPOINT, "InService", 1)
    assert view["variants"][0]["instance_count"] == 2 and view["variants"][0]["weight"] == 1.0
    assert view["url"] == f"{live.url}/endpoints/{ENDPOINT}/invocations"
    assert view["runtime_endpoint_url"] == live.url
    containers = dockerhost.docker_client().containers.list(
        filters={"label": f"{ENDPOINT_LABEL}={ENDPOINT}"}
    )
    assert len(containers) == 2
    for container in containers:
        assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        bindings = [
            b for bs in container.attrs["NetworkSettings"]["Ports"].values() for b in bs or []
        ]
        assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}


def test_the_model_answers_four_ways(live: Live, tmp_path: Path) -> None:
    # boto3's sagemaker-runtime
    assert live.invoke()["predictions"][0]["label"] in {"c0", "c1", "c2"}
    # the SageMaker SDK's Predictor
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer
    from sagemaker.session import Session

    boto_session = boto3.Session(region_name=live.settings.region, **s3_helpers.FAKE_CREDENTIALS)
    session = Session(
        boto_session=boto_session, sagemaker_runtime_client=live.runtime, default_bucket="unused"
    )
    predictor = Predictor(ENDPOINT, session, IdentitySerializer("image/png"), JSONDeserializer())
    assert predictor.predict(live.png)["predictions"][0]["label"] in {"c0", "c1", "c2"}
    live.served[0] += 1
    # plain HTTP
    request = urllib.request.Request(
        f"{live.url}/endpoints/{ENDPOINT}/invocations",
        data=live.png,
        headers={"Content-Type": "image/png"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert json.loads(reply.read())["predictions"][0]["probabilities"]
    live.served[0] += 1
    # local-mlops predict
    image = tmp_path / "red.png"
    image.write_bytes(live.png)
    code, stdout, stderr = run_cli("predict", str(image), "--json", "--top", "2")
    assert code == 0, stderr
    [result] = json.loads(stdout)
    assert len(result["top"]) == 2 and result["label"] == result["top"][0]["label"]
    live.served[0] += 1
    # a wrong content type is the model's 415, as a ModelError
    with pytest.raises(live.runtime.exceptions.ModelError) as error:  # type: ignore[attr-defined]
        live.runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=b"1,2", ContentType="text/csv")  # type: ignore[attr-defined]
    assert error.value.response["OriginalStatusCode"] == 415
    # a broken file among good ones: the good one is still classified, the broken one says why
    broken = tmp_path / "broken.png"
    broken.write_bytes(live.png[:40])
    code, stdout, stderr = run_cli("predict", str(image), str(broken), "--json")
    assert code == 1 and "1 of 2 image(s) could not be classified: broken.png" in stderr
    good, bad = json.loads(stdout)
    assert good["label"] == good["top"][0]["label"]
    assert bad["status"] == 400 and "not a readable PNG or JPEG" in bad["error"]
    live.served[0] += 1


def ping_over_socket(path: str) -> dict:
    """GET /ping through a Unix socket, as the router connects to an instance."""
    import http.client
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(path)

    connection = UnixConnection("instance")
    try:
        connection.request("GET", "/ping")
        reply = connection.getresponse()
        assert reply.status == 200
        return json.loads(reply.read())
    finally:
        connection.close()


def test_the_router_reaches_instances_through_their_sockets(live: Live) -> None:
    store = st.EndpointStore(live.settings.state_path)
    endpoint = store.get(ENDPOINT)
    instances = endpoint.instances()
    assert len(instances) == 2 and all(i.socket for i in instances)
    for instance in instances:
        assert ping_over_socket(instance.socket)["status"] == "healthy"
    # With every published port in the document pointing at nothing, the router still answers:
    # it goes through the sockets. Then the ports are put back.
    saved = [i.port for i in instances]
    try:
        with store.lock(ENDPOINT):
            for instance in instances:
                instance.port = free_port()
            store.put(endpoint)
        daemon.reload_router(live.settings)
        for _ in range(4):  # both instances, round robin
            assert live.invoke()["predictions"]
    finally:
        with store.lock(ENDPOINT):
            for instance, port in zip(instances, saved, strict=True):
                instance.port = port
            store.put(endpoint)
        daemon.reload_router(live.settings)


def test_a_blue_green_update_under_load_fails_no_request(live: Live) -> None:
    # Steady traffic on 127.0.0.1 that leaves the 2 cores room to start the new fleet.
    load = SteadyLoad(
        f"{live.url}/endpoints/{ENDPOINT}/invocations",
        live.png,
        threads=2,
        pause=0.1,
        max_seconds=400,
    )
    try:
        time.sleep(1)
        code, stdout, stderr = run_cli(
            "deploy",
            "--version",
            "2",
            "--traffic",
            "canary",
            "--step-percent",
            "50",
            "--bake",
            "2",
            "--json",
        )
        time.sleep(1)
    finally:
        load.finish()
        live.served[0] += load.ok
    assert code == 0, stderr
    assert json.loads(stdout)["version"] == 2
    assert load.failures == [] and load.ok > 10
    versions = {
        c.labels["com.local-mlops.model-version"]
        for c in dockerhost.docker_client().containers.list(
            filters={"label": f"{ENDPOINT_LABEL}={ENDPOINT}"}
        )
    }
    assert versions == {"2"}


def test_a_broken_version_rolls_back_by_itself_with_the_reason(live: Live) -> None:
    code, _, stderr = run_cli("deploy", "--version", "3", "--bake", "1")
    assert code == 1
    assert "rolled back" in stderr and "failed its health check" in stderr
    code, stdout, _ = run_cli("endpoints", "describe", ENDPOINT)
    described = json.loads(stdout)
    assert described["version"] == 2 and described["status"] == "InService"
    assert described["document"]["last_deployment"]["status"] == "RolledBack"
    assert live.invoke()["predictions"]


def test_no_capture_record_is_lost_on_sigterm_or_delete(live: Live) -> None:
    assert daemon.stop_router(live.settings)  # SIGTERM: the router flushes before it exits
    records = list(capture.read_records(live.s3, live.settings.bucket, ENDPOINT))
    assert len(records) == live.served[0]
    record = records[0]
    assert record["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert record["captureData"]["endpointInput"]["observedContentType"] == "image/png"
    assert record["captureData"]["endpointOutput"]["encoding"] == "JSON"
    # `up` brings the router back; `endpoints delete` flushes what it captured since.
    assert local.up(
        live.settings, live.settings.s3_endpoint, dockerhost.docker_client(), print
    ) == [ENDPOINT]
    for _ in range(3):
        live.invoke()
    sockets = [
        Path(i.socket) for i in st.EndpointStore(live.settings.state_path).get(ENDPOINT).instances()
    ]
    assert sockets and all(path.is_socket() for path in sockets)
    code, _, stderr = run_cli("endpoints", "delete", ENDPOINT)
    assert code == 0, stderr
    assert not any(path.parent.exists() for path in sockets)
    assert (
        len(list(capture.read_records(live.s3, live.settings.bucket, ENDPOINT))) == live.served[0]
    )
    assert (
        dockerhost.docker_client().containers.list(
            all=True, filters={"label": f"{ENDPOINT_LABEL}={ENDPOINT}"}
        )
        == []
    )
