"""Router and data-capture overhead, next to the model server called directly, in one run.

The backend is either a stub model server (``--backend stub``, default: a uvicorn app that
answers like the serving contract at once, so the figures show the router's own cost), or a
real endpoint container of the serving image (``--backend container --model-dir DIR``). The
real router process (``routerd``) runs with two endpoints on that backend, one capturing every
request to an S3 emulator (moto on 127.0.0.1), one not capturing. All traffic is on 127.0.0.1,
bounded in count and time. The capture measurement ends with the router's flush inside its
timed window: every record it captured is written and uploaded before its req/s is taken.
Goals: p50 through the router <= direct + 0.5 ms at concurrency 1; >= 0.95x direct req/s at
concurrency 16; capture on >= 0.95x capture off at concurrency 16.

The container is started as ``deploy`` starts an instance (published on 127.0.0.1, with the
router's Unix socket); beside "direct" (its published port, which Docker relays through
docker-proxy) the same client also calls the container's own bridge address, the floor without
that relay. Each measurement runs ``--rounds`` times, interleaved with the others (every other
round in reverse order); the ratios are printed per round and as their median.

    python benchmarks/router.py [--requests 4000] [--rounds 3] [--backend stub|container]
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
    url: str, body: bytes, concurrency: int, requests: int, seconds: float, flush_url: str = ""
) -> dict[str, float]:
    """Latencies (ms) and req/s of ``concurrency`` keep-alive clients, bounded in count and time.

    ``flush_url``: the router's flush, called when the requests are done and counted in the
    wall time, so req/s with capture pays for writing and uploading every record it captured.
    """
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
        if flush_url:
            async with session.post(flush_url) as reply:
                await reply.read()
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


def endpoint_doc(name: str, instance: Any, capture: bool, bucket: str) -> dict[str, Any]:
    from local_mlops.serving import state as st

    fleet = st.Fleet("v1-bench", 1, "arn:bench", "/none", "bench", [instance])
    return st.Endpoint(
        name,
        st.IN_SERVICE,
        [st.Variant(st.DEFAULT_VARIANT, 1, 1.0, [fleet])],
        st.DataCapture(capture, 100, f"s3://{bucket}/datacapture"),
    ).to_dict()


class Backend:
    """The model server: a stub process on the host, or an endpoint instance as deploy starts it."""

    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        from local_mlops.serving import state as st

        self.process: subprocess.Popen[bytes] | None = None
        self.containers: Any = None
        self.bridge_url = ""
        if args.backend == "stub":
            port = free_port()
            argv = [sys.executable, __file__, "--serve-stub", str(port)]
            self.process = subprocess.Popen(argv)
            self.instance = st.Instance("stub", port)
            self.what = "stub model server (uvicorn, answers at once)"
            return
        if not args.model_dir:
            raise SystemExit("--backend container needs --model-dir (an extracted model.tar.gz)")
        from local_mlops.config import load_settings
        from local_mlops.devenv.dockerhost import docker_client
        from local_mlops.serving.fleet import DockerInstances

        image = load_settings().endpoint_image_uri
        # The instance exactly as `deploy` starts one: published port, and the router's socket.
        self.containers = DockerInstances(docker_client(), scratch / "sock")
        fleet = st.Fleet("bench", 1, "arn:bench", str(Path(args.model_dir).resolve()), image)
        self.instance = self.containers.start(f"bench-{os.getpid()}", fleet, 1)[0]
        self.what = f"endpoint container of {image}"
        address = subprocess.run(
            ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
             self.instance.name], capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        if address:  # the container's own address: what a client gets without docker-proxy
            self.bridge_url = f"http://{address}:8080/invocations"

    def pid(self) -> int:
        """The stub's pid, or the container's main process as the host sees it."""
        if self.process is not None:
            return int(self.process.pid)
        done = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", self.instance.name],
            capture_output=True,
            text=True,
        )
        return int(done.stdout.strip())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.containers is not None:
            self.containers.stop([self.instance])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=4000, help="per measurement, at most")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement, at most")
    parser.add_argument("--rounds", type=int, default=3, help="each measurement, interleaved")
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
    router_port = free_port()
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
        backend = Backend(args, state)
        folder = state / "serving" / "endpoints"
        folder.mkdir(parents=True)
        for name, capture in (("plain", False), ("captured", True)):
            (folder / f"{name}.json").write_text(
                json.dumps(endpoint_doc(name, backend.instance, capture, "bench"))
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
            wait_port(backend.instance.port)
            wait_port(router_port)
            direct = f"http://127.0.0.1:{backend.instance.port}/invocations"
            routed = f"http://127.0.0.1:{router_port}/endpoints/plain/invocations"
            captured = f"http://127.0.0.1:{router_port}/endpoints/captured/invocations"
            plan = [
                ("direct, c=1", direct, 1),
                ("router, c=1", routed, 1),
                ("direct, c=16", direct, 16),
                ("router, c=16", routed, 16),
                ("router + capture, c=16", captured, 16),
            ]
            if backend.bridge_url:
                plan.insert(3, ("direct, no docker-proxy, c=16", backend.bridge_url, 16))
            runs: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in plan}
            for number in range(args.rounds):
                # Odd rounds run the plan backwards: no measurement always follows the same one.
                for label, url, c in plan if number % 2 == 0 else plan[::-1]:
                    before = cpu_seconds(router.pid), cpu_seconds(backend.pid())
                    flush = f"http://127.0.0.1:{router_port}/_local-mlops/flush"
                    flush = flush if url == captured else ""
                    figures = asyncio.run(measure(url, body, c, args.requests, args.seconds, flush))
                    served = figures["n"] + 20  # with the warm-up requests
                    figures["router_us"] = (cpu_seconds(router.pid) - before[0]) / served * 1e6
                    figures["backend_us"] = (cpu_seconds(backend.pid()) - before[1]) / served * 1e6
                    runs[label].append(figures)
        finally:
            router.send_signal(signal.SIGTERM)
            router.wait(timeout=60)
            backend.stop()
    via = "a Unix socket" if backend.instance.socket else "its published port"
    print(f"backend: {backend.what}; {os.cpu_count()} cores; the router reaches it through {via}")
    print(f"{args.rounds} rounds of each measurement, interleaved; medians of the rounds")
    print("CPU per request: measured from /proc, so it holds on a busy machine too\n")
    head = ("p50 ms", "p99 ms", "req/s", "n", "failed", "router CPU", "backend CPU")
    print(f"{'':30}" + "".join(f"{h:>12}" for h in head))
    rows = {
        label: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for label, rs in runs.items()
    }
    for label, r in rows.items():
        router_cpu = f"{r['router_us']:.0f} us" if label.startswith("router") else "-"
        cells = (f"{r['p50']:.3f}", f"{r['p99']:.3f}", f"{r['rps']:.1f}", f"{r['n']:.0f}")
        cells += (f"{sum(x['failures'] for x in runs[label]):.0f}", router_cpu)
        cells += (f"{r['backend_us']:.0f} us",)
        print(f"{label:30}" + "".join(f"{c:>12}" for c in cells))

    def ratios(top: str, bottom: str, key: str = "rps") -> list[float]:
        return [a[key] / b[key] for a, b in zip(runs[top], runs[bottom], strict=True)]

    def spread(values: list[float], unit: str = "x") -> str:
        inner = ", ".join(f"{v:.3f}" for v in values)
        return f"median {statistics.median(values):.3f}{unit} (rounds: {inner})"

    overheads = [
        a["p50"] - b["p50"] for a, b in zip(runs["router, c=1"], runs["direct, c=1"], strict=True)
    ]
    print(f"\nrouter p50 overhead at c=1: {spread(overheads, ' ms')}; goal <= +0.5 ms")
    print(f"router req/s at c=16 / direct: {spread(ratios('router, c=16', 'direct, c=16'))};"
          " goal >= 0.95x")  # fmt: skip
    if backend.bridge_url:
        bare = ratios("router, c=16", "direct, no docker-proxy, c=16")
        print(f"router req/s at c=16 / direct without docker-proxy: {spread(bare)}")
    captured_ratio = ratios("router + capture, c=16", "router, c=16")
    print(f"capture on at c=16 / capture off: {spread(captured_ratio)}; goal >= 0.95x")


if __name__ == "__main__":
    main()
