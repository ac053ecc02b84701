"""Training throughput of the image's `train` entry point next to a bare PyTorch loop.

Both run in the runtime image, on the same preprocessed digits data, one after the other in
this run. Goal: the entry point within 10% of the bare loop's images/s.

    python benchmarks/train_throughput.py [--epochs 3] [--backbone resnet18]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from local_mlops.config import load_settings


def docker(image: str, mounts: dict[Path, str], *command: str) -> tuple[str, float]:
    argv = ["docker", "run", "--rm"]
    for host, container in mounts.items():
        argv += ["-v", f"{host}:{container}"]
    started = time.perf_counter()
    done = subprocess.run([*argv, image, *command], capture_output=True, text=True, check=True)
    return done.stdout, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backbone", default="resnet18")
    args = parser.parse_args()
    image = load_settings().image_uri

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        docker(
            image,
            {work: "/w"},
            "sh",
            "-c",
            "python3 -m mlops_container.importer --dataset digits --output /w/raw --base-uri /w/raw"
            " && python3 -m mlops_container.preprocess --input-dir /w/raw --output-dir /w/prep",
        )
        base = work / "ml"
        for split in ("train", "validation"):
            (base / "input" / "data").mkdir(parents=True, exist_ok=True)
            (work / "prep" / split).rename(base / "input" / "data" / split)
        (base / "input" / "config").mkdir(parents=True)
        hps = {"epochs": str(args.epochs), "backbone": args.backbone}
        (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hps))

        log, train_wall = docker(image, {base: "/opt/ml"}, "train")
        rates = [float(r) for r in re.findall(r"images_per_sec=([0-9.]+)", log)]
        train_count = int(
            subprocess.run(
                [
                    "python3",
                    "-c",
                    "import numpy,sys; print(len(numpy.load(sys.argv[1])['labels']))",
                    str(base / "input" / "data" / "train" / "data.npz"),
                ],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            or 0
        )

        snippet = (
            "from pathlib import Path; from mlops_container.bench import bare_loop; "
            f"print(bare_loop(Path('/opt/ml/input/data/train/data.npz'), '{args.backbone}', {args.epochs}))"
        )
        out, bare_wall = docker(image, {base: "/opt/ml"}, "python3", "-c", snippet)
        bare_rate = float(out.strip().splitlines()[-1])

    entry_rate = statistics.median(rates)
    print(
        f"digits, {args.backbone}, {args.epochs} epochs, {train_count or '?'} training images, 2 threads"
    )
    print(f"{'':28}{'images/s':>10}{'wall s':>9}")
    print(f"{'train entry point (median)':28}{entry_rate:>10.1f}{train_wall:>9.1f}")
    print(f"{'bare PyTorch loop':28}{bare_rate:>10.1f}{bare_wall:>9.1f}")
    print(f"entry point / bare loop: {entry_rate / bare_rate:.1%} of the bare loop's throughput")


if __name__ == "__main__":
    main()
