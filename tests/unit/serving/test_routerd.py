"""The router process itself: SIGTERM flushes every captured record to S3 before it exits."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
from serving_fakes import FakeModel, free_port

from local_mlops.devenv.emulator import MotoServer, wait_until_reachable
from local_mlops.serving import capture
from local_mlops.serving import state as st


def test_sigterm_loses_no_captured_record(tmp_path: Path) -> None:
    model = FakeModel(1)
    with MotoServer("127.0.0.1") as url:
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        s3.create_bucket(Bucket="bkt")
        fleet = st.Fleet("v1-a", 1, "arn", "/m", "img", [st.Instance("i0", model.port)])
        endpoint = st.Endpoint(
            "e",
            st.IN_SERVICE,
            [st.Variant(st.DEFAULT_VARIANT, 1, 1.0, [fleet])],
            st.DataCapture(True, 100, "s3://bkt/datacapture"),
        )
        st.EndpointStore(tmp_path).put(endpoint)
        port = free_port()
        argv = [sys.executable, "-m", "local_mlops.serving.routerd", "--state-dir", str(tmp_path)]
        router = subprocess.Popen(
            [*argv, "--port", str(port), "--s3-endpoint", url, "--flush-seconds", "3600"]
        )
        try:
            wait_until_reachable(f"http://127.0.0.1:{port}", 30, "the router")
            time.sleep(0.2)
            for _ in range(7):
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/endpoints/e/invocations",
                    data=b"x",
                    headers={"Content-Type": "image/png"},
                )
                with urllib.request.urlopen(request, timeout=10) as reply:
                    reply.read()
            assert list(capture.read_records(s3, "bkt", "e")) == []  # still buffered
        finally:
            router.send_signal(signal.SIGTERM)
            router.wait(timeout=60)
            model.close()
        assert len(list(capture.read_records(s3, "bkt", "e"))) == 7
    assert json.loads((tmp_path / "serving" / "router.json").read_text())["port"] == port
