"""The serving image over HTTP, next to the same artifact in-process (ONNX Runtime and PyTorch).

For each backbone (resnet18, mobilenet_v3_small; small-input stem, 10 classes, 32x32): makes a
seeded artifact (model.pt + model.onnx, packed as model.tar.gz as training does), measures
in-process decode+forward of one PNG and batch-16 forwards with ONNX Runtime and PyTorch
(2 threads), then starts the serving container on it and measures start-to-/ping, resident
memory, and p50/p99 latency and req/s at concurrency 1 and 16 from a bounded keep-alive
asyncio client on 127.0.0.1 (one PNG per request). Prints the issue's goal ratios.

Start to ``/ping`` is timed from ``docker run`` with the artifact extracted into
``/opt/ml/model``, as SageMaker hosting and local endpoints mount it; beside it, the same with
only ``model.tar.gz`` mounted (the server then unpacks ``model.onnx`` itself) and the floor:
``docker run`` of the same image to the first answer of a bare Python listener, median of
three starts each.

    python benchmarks/serving.py [--seconds 10] [--backbones resnet18,mobilenet_v3_small]

Needs the serving image (``local-mlops build``; LOCAL_MLOPS_IMAGE_TAG picks the tag) and torch
on the host (the ``container`` extra). Run it on idle cores: it measures ratios, but other jobs
on a 2-core machine distort both sides differently.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "containers"))
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from mlops_container import onnx_export  # noqa: E402
from mlops_container.serving import decoding  # noqa: E402

SIZE, CLASSES, THREADS, BATCH = 32, 10, 2, 16


def make_artifact(backbone: str, folder: Path) -> Path:
    import torch

    from mlops_container.models import build_model, save_artifact

    torch.manual_seed(0)
    model = build_model(backbone, CLASSES, SIZE, [0.5] * 3, [0.25] * 3).eval()
    files = folder / "files"
    files.mkdir(parents=True)
    onnx_export.export(model, files / "model.onnx", SIZE)
    meta = {"architecture": backbone, "num_classes": CLASSES, "image_size": SIZE,
            "classes": [str(i) for i in range(CLASSES)],
            "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3}}  # fmt: skip
    save_artifact(files, model, meta)
    packed = folder / "packed"
    packed.mkdir()
    with tarfile.open(packed / "model.tar.gz", "w:gz") as tar:
        for path in sorted(files.iterdir()):
            tar.add(path, arcname=path.name)
    return folder


def png() -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def timed(function: Any, repeat: int) -> list[float]:
    function()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def in_process(folder: Path, body: bytes) -> dict[str, dict[str, float]]:
    """Median single decode+forward (ms) and batch-16 forward (ms, img/s) per backend."""
    import torch

    from mlops_container.models import load_model

    ort = __import__("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(str(folder / "files/model.onnx"), options)
    torch.set_num_threads(THREADS)
    model, _ = load_model(folder / "files")
    batch = np.random.default_rng(1).random((BATCH, 3, SIZE, SIZE), dtype=np.float32)

    def decode() -> np.ndarray:
        return decoding.to_batch(decoding.parse_body("image/png", body, SIZE), SIZE)

    def torch_forward(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()  # type: ignore[no-any-return]

    runs = {
        "onnxruntime": lambda x: session.run(None, {"input": x})[0],
        "torch": torch_forward,
    }
    figures = {}
    for name, run in runs.items():
        single = statistics.median(timed(lambda run=run: run(decode()), 200)) * 1000
        forward = statistics.median(timed(lambda run=run: run(batch), 20)) * 1000
        figures[name] = {
            "single_ms": single,
            "batch_ms": forward,
            "batch_img_s": BATCH / forward * 1000,
        }
    return figures


async def load(
    port: int, body: bytes, concurrency: int, seconds: float, host: str = "127.0.0.1"
) -> dict[str, float]:
    """Keep-alive clients posting ``body`` for ``seconds``; latency percentiles and req/s."""
    request = (
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(head.split(b" ", 2)[1])
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "req_s": len(ordered) / elapsed,
        "requests": len(ordered),
        "non_200": sum(n for code, n in statuses.items() if code != 200),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


STARTS = 3  # container starts per start-time figure (the median is printed)


def start_container(
    image: str, model: Path, port: int, command: tuple[str, ...] = ("serve",), path: str = "/ping"
) -> tuple[str, float]:
    """Start a container on ``model``; (name, seconds from `docker run` to `path` answering 200)."""
    name = f"local-mlops-bench-serving-{port}"
    started = time.perf_counter()
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080",
         "-v", f"{model}:/opt/ml/model:ro", image, *command],
        check=True, capture_output=True,
    )  # fmt: skip
    while time.perf_counter() - started < 60:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            time.sleep(0.005)
    return name, time.perf_counter() - started


def start_seconds(image: str, model: Path, command: tuple[str, ...] = ("serve",)) -> list[float]:
    """Seconds from `docker run` to the first 200, for ``STARTS`` fresh containers in turn."""
    times = []
    for _ in range(STARTS):
        name, seconds = start_container(
            image, model, free_port(), command, "/ping" if command == ("serve",) else "/"
        )
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        times.append(seconds)
    return times


def container_address(name: str) -> str:
    """The container's address on Docker's bridge (reachable from this host only)."""
    return subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
         name], capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def resident_mb(name: str) -> float:
    pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", name],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench(backbone: str, image: str, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch:
        folder = make_artifact(backbone, Path(scratch))
        os.chmod(scratch, 0o755)  # the container's user reads the mounted artifact
        body = png()
        progress(f"{backbone}: in-process ONNX Runtime and PyTorch ...")
        local = in_process(folder, body)
        progress(f"{backbone}: container starts (extracted, packed, bare listener) ...")
        starts = {
            "extracted": start_seconds(image, folder / "files"),
            "packed": start_seconds(image, folder / "packed"),
            "floor": start_seconds(
                image, folder / "files", ("python3", "-m", "http.server", "8080")
            ),
        }
        port = free_port()
        progress(f"{backbone}: starting the serving container ...")
        name, ready = start_container(image, folder / "files", port)
        rss = resident_mb(name)
        try:
            http, bridge = {}, {}
            address = container_address(name)
            for concurrency in (1, 16):
                progress(f"{backbone}: HTTP load at concurrency {concurrency} for {seconds:g} s")
                http[concurrency] = asyncio.run(load(port, body, concurrency, seconds))
                # The same through the container's own address: no docker-proxy on the way.
                bridge[concurrency] = asyncio.run(
                    load(8080, body, concurrency, seconds, host=address)
                )
            rss_after = resident_mb(name)
        finally:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    return {"backbone": backbone, "in_process": local, "http": http, "bridge": bridge,
            "ping_s": statistics.median(starts["extracted"]), "starts_s": starts,
            "ping_packed_s": statistics.median(starts["packed"]),
            "ping_floor_s": statistics.median(starts["floor"]), "ping_load_container_s": ready,
            "rss_mb": rss, "rss_after_load_mb": rss_after}  # fmt: skip


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def report(result: dict[str, Any]) -> None:
    local, http = result["in_process"], result["http"]
    ort, pt = local["onnxruntime"], local["torch"]
    best_batch = max(ort["batch_img_s"], pt["batch_img_s"])
    fastest_batch_ms = min(ort["batch_ms"], pt["batch_ms"])
    print(f"\n== {result['backbone']} (32x32, 10 classes, {THREADS} threads)")
    print(f"{'':26}{'single ms':>10}{'batch16 ms':>12}{'batch16 img/s':>15}")
    for name, row in local.items():
        print(f"in-process {name:15}{row['single_ms']:>10.2f}{row['batch_ms']:>12.2f}"
              f"{row['batch_img_s']:>15.0f}")  # fmt: skip
    print(f"{'':26}{'p50 ms':>10}{'p99 ms':>12}{'req/s':>15}{'non-200':>9}")
    for via, rows in (("", http), ("bridge ", result["bridge"])):
        for c, row in rows.items():
            label = f"HTTP {via}c={c}"
            print(f"{label:26}{row['p50_ms']:>10.2f}{row['p99_ms']:>12.2f}"
                  f"{row['req_s']:>15.0f}{row['non_200']:>9}")  # fmt: skip
    print(f"docker run to /ping 200 (median of {STARTS}): {result['ping_s']:.2f} s extracted "
          f"(goal <= 1), {result['ping_packed_s']:.2f} s from model.tar.gz; a bare Python "
          f"listener in the same image: {result['ping_floor_s']:.2f} s")  # fmt: skip
    every = "; ".join(f"{kind} " + " ".join(f"{t:.2f}" for t in times)
                      for kind, times in result["starts_s"].items())  # fmt: skip
    print(
        f"  every start, in order (s): {every}; the load test's container: "
        f"{result['ping_load_container_s']:.2f}"
    )
    print(
        f"resident: {result['rss_mb']:.0f} MB loaded, {result['rss_after_load_mb']:.0f} MB "
        "after the load"
    )
    goals = [
        ("p50 c=1 / in-process ORT single", http[1]["p50_ms"] / ort["single_ms"], "<= 1.3"),
        ("req/s c=16 / best in-process batch-16", http[16]["req_s"] / best_batch, ">= 0.85"),
        ("p99 c=16 / in-process batch-16 forward", http[16]["p99_ms"] / fastest_batch_ms, "<= 3"),
    ]
    for label, ratio, goal in goals:
        print(f"  {label:42} {ratio:6.2f}  (goal {goal})")
    print(f"load average after: {os.getloadavg()[0]:.1f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per concurrency level")
    parser.add_argument("--backbones", default="resnet18,mobilenet_v3_small")
    parser.add_argument("--image", default="", help="default: the configured serving image")
    parser.add_argument("--json", action="store_true", help="also print the raw figures")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from local_mlops.config import load_settings
    from local_mlops.devenv import dockerhost

    image = args.image or load_settings().serving_image_uri
    if not dockerhost.image_exists(image):
        print(f"error: {image} is not built; run `local-mlops build`", file=sys.stderr)
        return 1
    print(f"serving image {image}: {dockerhost.image_size(image) / 1e6:.0f} MB; "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    results = []
    for backbone in args.backbones.split(","):
        results.append(bench(backbone, image, args.seconds))
        report(results[-1])
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
