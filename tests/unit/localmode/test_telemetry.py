"""The SDK's telemetry decorator sees TelemetryOptOut=True; every other lookup sees no config."""

from __future__ import annotations

import logging
import uuid

import boto3
import pytest
from moto.server import ThreadedMotoServer
from sagemaker.local.local_session import LocalSagemakerClient
from sagemaker.utils import resolve_value_from_config

from local_mlops.targets.localmode import ExtendedLocalPipelineSession


@pytest.fixture(scope="module")
def session() -> ExtendedLocalPipelineSession:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    boto_session = boto3.Session(
        aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1"
    )
    bucket = f"tele-{uuid.uuid4().hex[:8]}"
    boto_session.client("s3", endpoint_url=f"http://{host}:{port}").create_bucket(Bucket=bucket)
    yield ExtendedLocalPipelineSession(
        boto_session=boto_session, s3_endpoint_url=f"http://{host}:{port}", default_bucket=bucket
    )
    server.stop()


def test_decorator_reads_opt_out(
    session: ExtendedLocalPipelineSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sagemaker.telemetry.telemetry_logging")
    # A decorated SDK method, called the way the SDK calls it.
    LocalSagemakerClient.create_model(
        session.sagemaker_client, "m", {"Image": "i", "ModelDataUrl": "s3://b/m.tar.gz"}
    )
    assert "TelemetryOptOut flag is set to: True" in caplog.text
    assert "Sending telemetry request" not in caplog.text


def test_other_lookups_see_no_config(session: ExtendedLocalPipelineSession) -> None:
    assert session.sagemaker_config in (None, {})
    path = "SageMaker.PythonSDK.Modules.TelemetryOptOut"
    assert resolve_value_from_config(None, path, sagemaker_session=session) is None
