"""The router speaks SageMaker Runtime: boto3 and the SageMaker SDK's Predictor work unchanged."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from serving_fakes import FakeModel, RouterThread, one_fleet_endpoint, runtime

from local_mlops.serving import state as st


def test_boto3_invoke_endpoint_forwards_headers_and_reports_the_variant(
    store: st.EndpointStore, router: RouterThread, model: FakeModel
) -> None:
    one_fleet_endpoint(store, "digits", [model])
    router.reload()
    reply = runtime(router.url).invoke_endpoint(
        EndpointName="digits",
        Body=b"\x89PNG...",
        ContentType="image/png",
        Accept="application/json",
        CustomAttributes="trace=1",
        InferenceId="req-42",
    )
    assert json.loads(reply["Body"].read())["predictions"][0]["size"] == 7
    assert reply["ContentType"] == "application/json"
    assert reply["InvokedProductionVariant"] == "AllTraffic"
    assert reply["CustomAttributes"] == "v=1"
    seen = model.seen[-1]
    assert seen["content-type"] == "image/png"
    assert seen["accept"] == "application/json"
    assert seen["x-amzn-sagemaker-custom-attributes"] == "trace=1"


def test_unknown_endpoint_and_variant_are_validation_errors(
    store: st.EndpointStore, router: RouterThread, model: FakeModel
) -> None:
    one_fleet_endpoint(store, "digits", [model])
    router.reload()
    client = runtime(router.url)
    with pytest.raises(ClientError) as missing:
        client.invoke_endpoint(EndpointName="nope", Body=b"x", ContentType="image/png")
    assert missing.value.response["Error"]["Code"] == "ValidationError"
    assert "Endpoint nope of account" in missing.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as variant:
        client.invoke_endpoint(
            EndpointName="digits", Body=b"x", ContentType="image/png", TargetVariant="Blue"
        )
    assert variant.value.response["Error"]["Code"] == "ValidationError"
    assert "Variant Blue not found" in variant.value.response["Error"]["Message"]


def test_a_model_error_keeps_its_original_status_and_message(
    store: st.EndpointStore, router: RouterThread, model: FakeModel
) -> None:
    model.status = 415
    one_fleet_endpoint(store, "digits", [model])
    router.reload()
    client = runtime(router.url)
    with pytest.raises(client.exceptions.ModelError) as error:
        client.invoke_endpoint(EndpointName="digits", Body=b"x", ContentType="text/plain")
    response = error.value.response
    assert response["Error"]["Code"] == "ModelError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 415
    assert "broken v1" in response["OriginalMessage"]
    assert "Received client error (415)" in response["Error"]["Message"]


def test_the_sagemaker_sdk_predictor_works_unchanged(
    store: st.EndpointStore, router: RouterThread, model: FakeModel
) -> None:
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer
    from sagemaker.session import Session

    one_fleet_endpoint(store, "digits", [model])
    router.reload()
    boto_session = boto3.Session(
        region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    session = Session(
        boto_session=boto_session,
        sagemaker_runtime_client=runtime(router.url),
        sagemaker_client=boto_session.client("sagemaker", endpoint_url="http://127.0.0.1:1"),
        default_bucket="unused",
    )
    predictor = Predictor(
        "digits",
        sagemaker_session=session,
        serializer=IdentitySerializer("image/png"),
        deserializer=JSONDeserializer(),
    )
    assert predictor.predict(b"abc")["predictions"][0]["size"] == 3


def test_plain_http_post_works_and_instances_share_the_load(
    store: st.EndpointStore, router: RouterThread
) -> None:
    models = [FakeModel(1), FakeModel(1)]
    try:
        one_fleet_endpoint(store, "digits", models)
        router.reload()
        for _ in range(10):
            request = urllib.request.Request(
                f"{router.url}/endpoints/digits/invocations",
                data=b"img",
                headers={"Content-Type": "image/png"},
            )
            with urllib.request.urlopen(request, timeout=5) as reply:
                assert reply.status == 200
        assert len(models[0].seen) == 5 and len(models[1].seen) == 5
    finally:
        for m in models:
            m.close()


def test_a_refused_instance_is_skipped_without_failing_the_request(
    store: st.EndpointStore, router: RouterThread, model: FakeModel
) -> None:
    dead = FakeModel(1)
    dead.close()  # its port now refuses connections
    one_fleet_endpoint(store, "digits", [dead, model])
    router.reload()
    client = runtime(router.url)
    for _ in range(4):
        client.invoke_endpoint(EndpointName="digits", Body=b"x", ContentType="image/png")
    assert len(model.seen) == 4


def test_an_endpoint_that_is_not_in_service_refuses_with_its_status(
    store: st.EndpointStore, router: RouterThread, model: FakeModel
) -> None:
    endpoint = one_fleet_endpoint(store, "digits", [model])
    endpoint.status = st.CREATING
    store.put(endpoint)
    router.reload()
    with pytest.raises(ClientError) as error:
        runtime(router.url).invoke_endpoint(
            EndpointName="digits", Body=b"x", ContentType="image/png"
        )
    assert "is Creating, not InService" in error.value.response["Error"]["Message"]


def one_instance(store: st.EndpointStore, router: RouterThread, instance: st.Instance) -> None:
    """Endpoint ``digits`` on one instance, capture off, and the router told."""
    fleet = st.Fleet("v1-a", 1, "arn", "/m", "img", [instance])
    store.put(
        st.Endpoint(
            "digits",
            st.IN_SERVICE,
            [st.Variant(st.DEFAULT_VARIANT, 1, 1.0, [fleet])],
            st.DataCapture(False, 100, "s3://bkt/datacapture"),
        )
    )
    router.reload()


def test_a_model_that_drops_the_connection_is_a_model_error_not_a_success(
    store: st.EndpointStore, router: RouterThread
) -> None:
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def drop() -> None:  # takes the request, then closes without an answer (a crashed model)
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.close()

    threading.Thread(target=drop, daemon=True).start()
    one_instance(store, router, st.Instance("i0", listener.getsockname()[1]))
    client = runtime(router.url)
    try:
        with pytest.raises(client.exceptions.ModelError) as error:
            client.invoke_endpoint(EndpointName="digits", Body=b"x", ContentType="image/png")
    finally:
        listener.close()
    assert error.value.response["OriginalStatusCode"] == 0
    assert "closed the connection before answering" in error.value.response["OriginalMessage"]


def test_an_instance_with_a_socket_is_reached_through_it_and_else_through_its_port(
    store: st.EndpointStore, router: RouterThread, tmp_path: Path
) -> None:
    # Two servers stand for the two ways into one instance; the version they answer says which.
    by_port, by_socket = FakeModel(1), FakeModel(2, unix_path=str(tmp_path / "serve.sock"))
    try:
        for socket_path, expected in ((str(tmp_path / "serve.sock"), 2), ("", 1)):
            one_instance(store, router, st.Instance("i0", by_port.port, socket_path))
            reply = runtime(router.url).invoke_endpoint(
                EndpointName="digits", Body=b"x", ContentType="image/png"
            )
            assert json.loads(reply["Body"].read())["version"] == expected
    finally:
        by_port.close()
        by_socket.close()


def test_a_socket_nobody_listens_on_falls_back_to_the_port(
    store: st.EndpointStore, router: RouterThread, model: FakeModel, tmp_path: Path
) -> None:
    import socket

    stale = tmp_path / "serve.sock"  # left by a killed server: the file is there, no listener
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).bind(str(stale))
    for path in (str(stale), str(tmp_path / "missing.sock")):
        one_instance(store, router, st.Instance("i0", model.port, path))
        client = runtime(router.url)
        for _ in range(3):
            reply = client.invoke_endpoint(
                EndpointName="digits", Body=b"x", ContentType="image/png"
            )
            assert json.loads(reply["Body"].read())["version"] == 1
