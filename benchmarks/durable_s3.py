"""What persisting every write costs: S3 PUT latency of plain moto against durable_s3.

Starts three servers on 127.0.0.1 — plain moto (the emulator before), durable_s3 with fsync (the
default) and durable_s3 without fsync — and sends them the same PUTs in turn (1 KiB like a run
record, 1 MiB like a shard), so machine noise hits all three alike. Then SIGKILLs the durable one
and times its restart with everything it persisted.

    python benchmarks/durable_s3.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from local_mlops.devenv.emulator import DURABLE_S3_PATH, _free_port, is_reachable


def start(argv: list[str], port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(DURABLE_S3_PATH))
    process = subprocess.Popen(
        [sys.executable, *argv, "-p", str(port)], env=env, stderr=subprocess.DEVNULL
    )
    while not is_reachable(f"http://127.0.0.1:{port}", timeout=0.2):
        time.sleep(0.05)
    return process


def client(port: int) -> object:
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="a",
        aws_secret_access_key="b",
        region_name="us-east-1",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="durable-bench-"))
    servers = {
        "moto (before)": ["-m", "moto.server"],
        "durable_s3, fsync": ["-m", "durable_s3", "--data", str(data / "fsync")],
        "durable_s3, no fsync": ["-m", "durable_s3", "--data", str(data / "plain"), "--no-fsync"],
    }
    ports = {name: _free_port("127.0.0.1") for name in servers}
    processes = {name: start(argv, ports[name]) for name, argv in servers.items()}
    clients = {name: client(port) for name, port in ports.items()}
    times: dict[tuple[str, str], list[float]] = {}
    try:
        for c in clients.values():
            c.create_bucket(Bucket="bench")  # type: ignore[attr-defined]
        for size_name, size, rounds in (("1 KiB", 1024, args.rounds), ("1 MiB", 2**20, 50)):
            body = os.urandom(size)
            for i in range(rounds):
                for name, c in clients.items():
                    started = time.perf_counter()
                    c.put_object(Bucket="bench", Key=f"{size_name}/{i}", Body=body)  # type: ignore[attr-defined]
                    times.setdefault((name, size_name), []).append(time.perf_counter() - started)
        name = "durable_s3, fsync"
        os.kill(processes[name].pid, signal.SIGKILL)
        processes[name].wait()
        started = time.perf_counter()
        processes[name] = start(servers[name], ports[name])
        restart = time.perf_counter() - started
        objects = clients[name].list_objects_v2(Bucket="bench")["KeyCount"]  # type: ignore[attr-defined]
    finally:
        for process in processes.values():
            process.terminate()
    print(f"PUT latency, {os.cpu_count()} cores, median / p90 in ms")
    print(f"{'':24}{'1 KiB':>16}{'1 MiB':>16}")
    for name in servers:
        cells = []
        for size_name in ("1 KiB", "1 MiB"):
            values = sorted(times[(name, size_name)])
            p90 = values[int(len(values) * 0.9)]
            cells.append(f"{statistics.median(values) * 1000:.1f} / {p90 * 1000:.1f}")
        print(f"{name:24}{cells[0]:>16}{cells[1]:>16}")
    print(f"restart after SIGKILL with {objects} objects: {restart:.2f} s")


if __name__ == "__main__":
    main()
