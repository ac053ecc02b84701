"""Training throughput on 1 and 2 instances, side by side, with the image's `train` entry point.

Both runs use the runtime image on the same preprocessed digits data, one after the other in this
run. The 2-instance run is two containers (`algo-1`, `algo-2`) on a Docker network of their own,
each with SageMaker's resourceconfig.json and half of this machine's cores (`SM_NUM_CPUS`), as
local mode runs `run --instance-count 2`. On one machine the two instances share its cores, so
the point of the figures here is correctness (the same accuracy), not speed: a speed-up needs
instances with cores of their own (SageMaker).

    python benchmarks/distributed.py [--epochs 3] [--backbone resnet18]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from local_mlops.config import load_settings


def docker(*argv: str, timeout: float = 1800) -> str:
    done = subprocess.run(
        ["docker", *argv], capture_output=True, text=True, check=True, timeout=timeout
    )
    return done.stdout


def lay_out(base: Path, prepared: Path, hps: dict[str, str], host: str, hosts: list[str]) -> None:
    (base / "input" / "config").mkdir(parents=True)
    shutil.copytree(prepared / "train", base / "input" / "data" / "train")
    shutil.copytree(prepared / "validation", base / "input" / "data" / "validation")
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hps))
    resource = {"current_host": host, "hosts": hosts, "network_interface_name": "eth0"}
    (base / "input" / "config" / "resourceconfig.json").write_text(json.dumps(resource))


def train(image: str, work: Path, prepared: Path, hps: dict[str, str], count: int) -> dict:
    """One training job on ``count`` containers; the leader's figures."""
    tag = f"bench-dist-{os.getpid()}-{count}"
    hosts = [f"algo-{i}" for i in range(1, count + 1)]
    cpus = max(1, (os.cpu_count() or 1) // count)
    docker("network", "create", tag)
    names = []
    try:
        started = time.perf_counter()
        for host in hosts:
            base = work / tag / host
            lay_out(base, prepared, hps, host, hosts)
            name = f"{tag}-{host}"
            docker(
                "run", "-d", "--name", name, "--network", tag, "--network-alias", host,
                "-e", f"SM_NUM_CPUS={cpus}", "-v", f"{base}:/opt/ml", image, "train",
            )  # fmt: skip
            names.append(name)
        codes = [int(docker("wait", name).strip()) for name in names]
        wall = time.perf_counter() - started
        log = docker("logs", names[0])
        if any(codes):
            raise SystemExit(f"{count} instance(s): exit codes {codes}\n{log[-2000:]}")
    finally:
        if names:
            subprocess.run(["docker", "rm", "-f", *names], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", tag], capture_output=True, check=False)
    metrics = json.loads((work / tag / "algo-1" / "output" / "data" / "metrics.json").read_text())
    rates = [float(r) for r in re.findall(r"images_per_sec=([0-9.]+)", log)]
    return {
        "images_per_sec": statistics.median(rates),
        "val_accuracy": metrics["val_accuracy"],
        "wall_seconds": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backbone", default="resnet18")
    args = parser.parse_args()
    image = load_settings().image_uri
    hps = {"epochs": str(args.epochs), "backbone": args.backbone}
    with tempfile.TemporaryDirectory(prefix="bench-dist-") as tmp:
        work = Path(tmp)
        work.chmod(0o777)  # the image's steps run as an unprivileged user
        docker(
            "run", "--rm", "-v", f"{work}:/w", image, "sh", "-c",
            "python3 -m mlops_container.importer --dataset digits --output /w/raw --base-uri /w/raw"
            " && python3 -m mlops_container.preprocess --input-dir /w/raw --output-dir /w/prep",
        )  # fmt: skip
        results = {n: train(image, work, work / "prep", hps, n) for n in (1, 2)}
        # The containers wrote as root: hand the folder back so it can be removed.
        docker("run", "--rm", "-v", f"{work}:/w", image, "chown", "-R", f"{os.getuid()}", "/w")
    print(f"digits, {args.backbone}, {args.epochs} epochs, {os.cpu_count()} cores on this machine")
    print(f"{'instances':>9}  {'images/s':>9}  {'val_accuracy':>12}  {'wall s':>7}")
    for count, r in results.items():
        print(
            f"{count:>9}  {r['images_per_sec']:>9.1f}  {r['val_accuracy']:>12.4f}  "
            f"{r['wall_seconds']:>7.1f}"
        )
    ratio = results[2]["images_per_sec"] / results[1]["images_per_sec"]
    print(f"2 instances / 1 instance: {ratio:.2f}x images/s (both share this machine's cores)")


if __name__ == "__main__":
    main()
