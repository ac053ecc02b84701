"""Router and data-capture overhead, next to the model server called directly, in one run.

The backend is either a stub model server (``--backend stub``, default: a uvicorn app that
answers like the serving contract at once, so the figures show the router's own cost), or a
real endpoint container of the serving image (``--backend container --model-dir DIR``). The
real router process (``routerd``) runs with two endpoints on that backend, one capturing every
request to an S3 emulator (moto on 127.0.0.1), one not capturing. All traffic is on 127.0.0.1,
bounded in count and time. Goals: p50 through the router <= direct + 0.5 ms at concurrency 1;
>= 0.95x direct req/s at concurrency 16; capture on >= 0.95x capture off at concurrency 16.

    python benchmarks/router.py [--requests 2000] [--seconds 10] [--backend stub|container]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STUB_ANSWER = json.dumps(
    {"predictions": [{"label": "7", "index": 7, "probabilities": {str(i): 0.1 for i in range(10)}}]}
).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def stub_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A model server that answers at once (GET /ping, POST /invocations)."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(STUB_ANSWER)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send(
        {
            "type": "http.response.body",
            "body": STUB_ANSWER if scope["path"] == "/invocations" else b"{}",
        }
    )


def sample_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answers on 127.0.0.1:{port}")


async def measure(
    url: str, body: bytes, concurrency: int, requests: int, seconds: float
) -> dict[str, float]:
    """Latencies (ms) and req/s of ``concurrency`` keep-alive clients, bounded in count and time."""
    import aiohttp

    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds
    headers = {"Content-Type": "image/png"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(20):  # warm the connections and both servers
            async with session.post(url, data=body, headers=headers) as reply:
                await reply.read()

        async def worker() -> None:
            nonlocal failures
            while len(latencies) < requests and time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as reply:
                    await reply.read()
                    if reply.status != 200:
                        failures += 1
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "rps": len(latencies) / wall,
        "n": len(latencies),
        "failures": failures,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc): robust to a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_pid(backend: Any) -> int:
    """The stub's pid, or the container's main process as the host sees it."""
    if isinstance(backend, str):
        done = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", backend], capture_output=True, text=True
        )
        return int(done.stdout.strip())
    return int(backend.pid)


def endpoint_doc(name: str, port: int, capture: bool, bucket: str) -> dict[str, Any]:
    from local_mlops.serving import state as st

    fleet = st.Fleet("v1-bench", 1, "arn:bench", "/none", "bench", [st.Instance("bench-0", port)])
    return st.Endpoint(
        name,
        st.IN_SERVICE,
        [st.Variant(st.DEFAULT_VARIANT, 1, 1.0, [fleet])],
        st.DataCapture(capture, 100, f"s3://{bucket}/datacapture"),
    ).to_dict()


def start_backend(args: argparse.Namespace, port: int) -> tuple[Any, str]:
    if args.backend == "stub":
        argv = [sys.executable, __file__, "--serve-stub", str(port)]
        return subprocess.Popen(argv), "stub model server (uvicorn, answers at once)"
    if not args.model_dir:
        raise SystemExit("--backend container needs --model-dir (an extracted model.tar.gz)")
    from local_mlops.config import load_settings

    image = load_settings().endpoint_image_uri
    name = f"bench-router-{port}"
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--rm",
            "--name",
            name,
            "-p",
            f"127.0.0.1:{port}:8080",
            "-v",
            f"{Path(args.model_dir).resolve()}:/opt/ml/model:ro",
            image,
            "serve",
        ],
        check=True,
        capture_output=True,
    )
    return name, f"endpoint container of {image}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="per measurement, at most")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement, at most")
    parser.add_argument("--backend", choices=("stub", "container"), default="stub")
    parser.add_argument("--model-dir", default="")
    parser.add_argument("--serve-stub", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_stub:
        import uvicorn

        uvicorn.run(
            stub_app,
            host="127.0.0.1",
            port=args.serve_stub,
            log_level="warning",
            loop="uvloop",
            http="httptools",
            access_log=False,
        )
        return

    from local_mlops.devenv.emulator import MotoServer

    body = sample_png()
    backend_port, router_port = free_port(), free_port()
    backend, what = start_backend(args, backend_port)
    with (
        tempfile.TemporaryDirectory(prefix="bench-router-") as tmp,
        MotoServer("127.0.0.1") as s3_url,
    ):
        import boto3

        boto3.client(
            "s3",
            endpoint_url=s3_url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        ).create_bucket(Bucket="bench")
        state = Path(tmp)
        folder = state / "serving" / "endpoints"
        folder.mkdir(parents=True)
        for name, capture in (("plain", False), ("captured", True)):
            (folder / f"{name}.json").write_text(
                json.dumps(endpoint_doc(name, backend_port, capture, "bench"))
            )
        router = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local_mlops.serving.routerd",
                "--state-dir",
                str(state),
                "--port",
                str(router_port),
                "--s3-endpoint",
                s3_url,
            ],
            env={**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"},
        )
        try:
            wait_port(backend_port)
            wait_port(router_port)
            direct = f"http://127.0.0.1:{backend_port}/invocations"
            routed = f"http://127.0.0.1:{router_port}/endpoints/plain/invocations"
            captured = f"http://127.0.0.1:{router_port}/endpoints/captured/invocations"
            rows = []
            for label, url, c in (
                ("direct, c=1", direct, 1),
                ("router, c=1", routed, 1),
                ("direct, c=16", direct, 16),
                ("router, c=16", routed, 16),
                ("router + capture, c=16", captured, 16),
            ):
                before = cpu_seconds(router.pid), cpu_seconds(backend_pid(backend))
                figures = asyncio.run(measure(url, body, c, args.requests, args.seconds))
                served = figures["n"] + 20  # with the warm-up requests
                figures["router_us"] = (cpu_seconds(router.pid) - before[0]) / served * 1e6
                figures["backend_us"] = (
                    (cpu_seconds(backend_pid(backend)) - before[1]) / served * 1e6
                )
                rows.append((label, figures))
        finally:
            router.send_signal(signal.SIGTERM)
            router.wait(timeout=60)
            if isinstance(backend, str):
                subprocess.run(["docker", "rm", "-f", backend], capture_output=True, check=False)
            else:
                backend.terminate()
                backend.wait(timeout=10)
    print(f"backend: {what}; {os.cpu_count()} cores; all on 127.0.0.1\n")
    print("CPU per request: measured from /proc, so it holds on a busy machine too\n")
    head = ("p50 ms", "p99 ms", "req/s", "n", "failed", "router CPU", "backend CPU")
    print(f"{'':24}" + "".join(f"{h:>12}" for h in head))
    for label, r in rows:
        router_cpu = f"{r['router_us']:.0f} us" if label.startswith("router") else "-"
        cells = (f"{r['p50']:.3f}", f"{r['p99']:.3f}", f"{r['rps']:.1f}", f"{r['n']:.0f}")
        cells += (f"{r['failures']:.0f}", router_cpu, f"{r['backend_us']:.0f} us")
        print(f"{label:24}" + "".join(f"{c:>12}" for c in cells))
    figures = dict(rows)
    overhead = figures["router, c=1"]["p50"] - figures["direct, c=1"]["p50"]
    ratio = figures["router, c=16"]["rps"] / figures["direct, c=16"]["rps"]
    capture_ratio = figures["router + capture, c=16"]["rps"] / figures["router, c=16"]["rps"]
    print(f"\nrouter p50 overhead at c=1: {overhead:+.3f} ms (goal <= +0.5 ms)")
    print(f"router req/s at c=16: {ratio:.3f}x direct (goal >= 0.95x)")
    print(f"capture on at c=16: {capture_ratio:.3f}x capture off (goal >= 0.95x)")


if __name__ == "__main__":
    main()
