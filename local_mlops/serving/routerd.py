"""The router process: ``python -m local_mlops.serving.routerd --state-dir DIR --port N ...``.

Started detached by the CLI (``serving.daemon.start_router``), it outlives the command that
started it. It serves the router app with uvicorn on 127.0.0.1, reads the endpoint documents of
the state dir (again on ``POST /_local-mlops/reload`` or SIGHUP), and writes its pid and port to
``<state_dir>/serving/router.json``. On SIGTERM it stops accepting, finishes the requests in
flight, then flushes the capture buffer in the app's lifespan shutdown (no record is lost) and
exits.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from local_mlops.serving.capture import CaptureWriter, s3_uploader
from local_mlops.serving.listener import server_config
from local_mlops.serving.router import Router
from local_mlops.serving.state import EndpointStore

ROUTER_FILE = "router.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local_mlops.serving.routerd")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--s3-endpoint", default="", help="S3 API for capture uploads")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--flush-seconds", type=float, default=5.0)
    return parser


def _s3_client(endpoint: str, region: str) -> object:
    import boto3
    from botocore.config import Config

    credentials = (
        {"aws_access_key_id": "local-mlops", "aws_secret_access_key": "local-mlops"}
        if endpoint
        else {}
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=region,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3),
        **credentials,
    )


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    args = build_parser().parse_args(argv)
    serving_dir = args.state_dir / "serving"
    store = EndpointStore(args.state_dir)
    writer = CaptureWriter(
        serving_dir / "capture-spool",
        s3_uploader(_s3_client(args.s3_endpoint, args.region)),
        max_age_seconds=args.flush_seconds,
    )
    writer.start()
    router = Router(store.list, writer)
    config = server_config(router, args.host, args.port, loop="none")
    server = uvicorn.Server(config)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, router.reload)
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            # What start-up made (botocore's service models, the app, the loop) lives as long as
            # the process: out of the collector's sight, a full collection no longer walks it.
            gc.freeze()
            info = {"pid": os.getpid(), "host": args.host, "port": args.port}
            (serving_dir / ROUTER_FILE).write_text(json.dumps(info))
            print(f"router on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
        await task

    import uvloop

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve())
    finally:
        writer.close()
        print(f"router stopped; {writer.written} capture records written", file=sys.stderr)
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
