"""Batch transform throughput next to the same artifact in-process at batch 64.

Makes a seeded artifact (as ``benchmarks/serving.py`` does: model.pt + model.onnx in
model.tar.gz, small-input stem, 10 classes, 32x32) and N random PNGs, then in one run:

- in-process: ONNX Runtime (2 threads) decoding every PNG and scoring batches of 64 — with and
  without the decode — the bar;
- transform: the images under an S3 prefix of an embedded S3 emulator, the artifact registered
  as an approved version, and ``local-mlops transform``'s library call (local mode's Transform
  job in the serving image: records posted MaxConcurrentTransforms at a time, the server's
  dynamic batcher merging them). Timed twice: the whole job (container start and S3 reads and
  writes included) and its records phase (first record to last).

    python benchmarks/transform.py [--images 1024] [--backbone resnet18] [--smoke]

Needs the serving image (``local-mlops build``; LOCAL_MLOPS_IMAGE_TAG picks the tag) and torch on
the host. Run it on idle cores: on a shared 2-core machine the client threads, the emulator and
the container compete with each other and with everything else. The goal: transform at >= 0.8x
the in-process batch-64 throughput.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))
from serving import CLASSES, SIZE, THREADS, make_artifact  # noqa: E402  (benchmarks/serving.py)

from mlops_container.serving import decoding  # noqa: E402

BATCH = 64


def pngs(count: int) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(buffer, "PNG")
        images.append(buffer.getvalue())
    return images


def in_process(folder: Path, bodies: list[bytes]) -> dict[str, float]:
    """img/s of batch-64 ONNX Runtime forwards over every image, with and without decoding."""
    ort = __import__("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(str(folder / "files/model.onnx"), options)

    def decode(chunk: list[bytes]) -> np.ndarray:
        return np.concatenate(
            [decoding.to_batch(decoding.parse_body("image/png", b, SIZE), SIZE) for b in chunk]
        )

    chunks = [bodies[i : i + BATCH] for i in range(0, len(bodies), BATCH)]
    session.run(None, {"input": decode(chunks[0])})  # warm-up
    started = time.perf_counter()
    batches = [decode(chunk) for chunk in chunks]
    decoded = time.perf_counter()
    for batch in batches:
        session.run(None, {"input": batch})
    done = time.perf_counter()
    return {
        "forward_img_s": len(bodies) / (done - decoded),
        "decode_forward_img_s": len(bodies) / (done - started),
    }


def transform(
    folder: Path, bodies: list[bytes], scratch: Path, from_folder: bool
) -> dict[str, float]:
    from local_mlops import s3 as s3_helpers
    from local_mlops.config import load_settings
    from local_mlops.devenv import emulator
    from local_mlops.stores.registry import LocalModelRegistry
    from local_mlops.targets import transform as service

    settings = load_settings({"state_dir": str(scratch / "state"), "bucket": "bench-transform",
                              "model_package_group": "bench-transform"})  # fmt: skip
    server = emulator.EmbeddedEmulator(settings)
    url = server.start()
    try:
        settings = dataclasses.replace(settings, s3_endpoint=url)
        s3 = s3_helpers.s3_client(settings, url)
        s3.upload_file(str(folder / "packed/model.tar.gz"), settings.bucket, "model.tar.gz")
        LocalModelRegistry(s3, settings.bucket, settings.region).register(
            settings.model_package_group,
            model_data_url=f"s3://{settings.bucket}/model.tar.gz",
            image=settings.serving_image_uri,
            approval_status="Approved",
        )
        marks: list[tuple[int, float]] = []

        def record(done: int, total: int, key: str) -> None:
            marks.append((done, time.perf_counter()))

        if from_folder:
            # A local folder into a local folder: packed into JSON Lines shards, split by line,
            # a few hundred images a request.
            (scratch / "in").mkdir()
            for index, body in enumerate(bodies):
                (scratch / "in" / f"{index:06d}.png").write_bytes(body)
            packed = service.transform(
                settings,
                lambda message: print(message, file=sys.stderr, flush=True),
                input_path=str(scratch / "in"),
                output_path=str(scratch / "out"),
                on_record=record,
            )
            if packed.errors or len(list((scratch / "out").glob("*.out"))) != len(bodies):
                raise SystemExit(f"the folder job wrote {packed.scored} answers of {len(bodies)}")
            done = [d for d, _ in marks]
            seconds = marks[-1][1] - marks[0][1] if len(marks) > 1 else 0.0
            return {"folder_img_s": packed.images_per_second, "folder_s": packed.seconds,
                    "folder_answers": len(marks),
                    "folder_records_img_s": (done[-1] - done[0]) / seconds if seconds else 0.0}  # fmt: skip
        for index, body in enumerate(bodies):
            s3.put_object(Bucket=settings.bucket, Key=f"in/{index:06d}.png", Body=body)

        summary = service.transform(
            settings,
            lambda message: print(message, file=sys.stderr, flush=True),
            input_path=f"s3://{settings.bucket}/in/",
            output_path=f"s3://{settings.bucket}/out/",
            on_record=record,
        )
        s3_img_s = s3_bound(settings, url, len(bodies))
    finally:
        server.stop()
    if summary.errors:
        raise SystemExit(f"{len(summary.errors)} error entries: {summary.errors[0].error}")
    records = (len(marks) - 1) / (marks[-1][1] - marks[0][1]) if len(marks) > 1 else float("nan")
    return {"job_img_s": summary.images_per_second, "job_s": summary.seconds,
            "records_img_s": records, "s3_img_s": s3_img_s}  # fmt: skip


def s3_bound(settings: Any, url: str, count: int, threads: int = 32) -> float:
    """Records/s of the emulator alone doing each record's S3 part (GET the image, PUT .out) at
    the job's concurrency: the most the records phase can reach on it."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config

    from local_mlops.s3 import FAKE_CREDENTIALS

    s3 = boto3.Session(region_name=settings.region, **FAKE_CREDENTIALS).client(
        "s3", endpoint_url=url, config=Config(max_pool_connections=threads)
    )

    def one(index: int) -> None:
        s3.get_object(Bucket=settings.bucket, Key=f"in/{index:06d}.png")["Body"].read()
        s3.put_object(Bucket=settings.bucket, Key=f"probe/{index:06d}.out", Body=b"{}" * 200)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--smoke", action="store_true", help="64 images of mobilenet: a check")
    parser.add_argument("--folder", action="store_true",
                        help="time a local folder into a local folder (packed) instead of S3")  # fmt: skip
    args = parser.parse_args(argv)
    count, backbone = (64, "mobilenet_v3_small") if args.smoke else (args.images, args.backbone)
    from local_mlops.config import load_settings
    from local_mlops.devenv import dockerhost

    image = load_settings().serving_image_uri
    if not dockerhost.image_exists(image):
        print(f"error: {image} is not built; run `local-mlops build`", file=sys.stderr)
        return 1
    print(f"{backbone}, {count} PNGs of {SIZE}x{SIZE}, {CLASSES} classes; serving image {image}; "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-transform-") as scratch:
        folder = make_artifact(backbone, Path(scratch) / "model")
        bodies = pngs(count)
        local = in_process(folder, bodies)
        job: dict[str, Any] = transform(folder, bodies, Path(scratch), args.folder)
    bar = local["decode_forward_img_s"]
    print(f"in-process ONNX Runtime, batch {BATCH}: {local['forward_img_s']:.0f} img/s forward "
          f"only, {bar:.0f} img/s with PNG decoding")  # fmt: skip
    if args.folder:
        print(f"folder to folder (JSON Lines shards split by line, {job['folder_answers']} "
              f"answers): {job['folder_img_s']:.0f} img/s over the whole job ({job['folder_s']:.1f} "
              f"s, container start and stop included): {job['folder_img_s'] / bar:.2f}x the "
              f"in-process batch-{BATCH} figure; records phase (first answer to last) "
              f"{job['folder_records_img_s']:.0f} img/s: {job['folder_records_img_s'] / bar:.2f}x "
              f"(goal >= 0.8)")  # fmt: skip
        return 0
    print(f"transform job: {job['job_img_s']:.0f} img/s over the whole job ({job['job_s']:.1f} s, "
          f"container start included); {job['records_img_s']:.0f} img/s in its records phase")  # fmt: skip
    print(f"the S3 emulator alone, each record's GET + PUT at concurrency 32: "
          f"{job['s3_img_s']:.0f} records/s (the records phase's ceiling on it)")  # fmt: skip
    print(f"ratio (goal >= 0.8): whole job {job['job_img_s'] / bar:.2f}x, "
          f"records phase {job['records_img_s'] / bar:.2f}x the in-process batch-{BATCH} figure")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
