"""Inference server (the image's ``serve`` command), following the SageMaker hosting contract.

Loads ``<base>/model`` (model.pt + model.json, or model.tar.gz) and listens on
``0.0.0.0:$SAGEMAKER_BIND_TO_PORT`` (8080): ``GET /ping``, ``GET /execution-parameters``,
``POST /invocations`` with an image body (image/png, image/jpeg, application/x-image) or
``application/json`` ``{"instances": [<base64 image>, ...]}``.

Example::

    SAGEMAKER_BASE_DIR=/tmp/job python3 -m mlops_container.serve
    curl --data-binary @digit.png -H 'Content-Type: image/png' localhost:8080/invocations
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from . import contract
from .archive import model_files_dir
from .errors import HTTPError
from .images import decode_bytes, to_rgb_array
from .models import load_model

IMAGE_TYPES = contract.CONTENT_TYPES
JSON_TYPE = contract.RESPONSE_TYPES[0]
DRAIN_LIMIT = 256 * 1024 * 1024  # larger bodies are not read at all: the connection closes


class Predictor:
    """The loaded model plus its preprocessing; one forward at a time under a lock."""

    def __init__(self, model: torch.nn.Module, meta: dict[str, Any]) -> None:
        self.model = model
        self.meta = meta
        self.classes = [str(c) for c in meta["classes"]]
        self.image_size = int(meta["image_size"])
        self.lock = threading.Lock()

    def predict(self, images: list[Image.Image]) -> list[dict[str, Any]]:
        """Top-1 label, index and every class probability for each image."""
        batch = np.stack([to_rgb_array(image, self.image_size) for image in images])
        inputs = torch.from_numpy(batch.transpose(0, 3, 1, 2).copy()).float().div_(255)
        with self.lock, torch.inference_mode():
            probabilities = torch.softmax(self.model(inputs), dim=1).numpy()
        results = []
        for row in probabilities:
            index = int(row.argmax())
            results.append(
                {
                    "label": self.classes[index],
                    "index": index,
                    "probabilities": {
                        c: round(float(p), 6) for c, p in zip(self.classes, row, strict=True)
                    },
                }
            )
        return results


def decode_request(content_type: str, body: bytes) -> list[Image.Image]:
    """Turn a request body into images; HTTPError 415/400 on unsupported or bad input."""
    media = content_type.split(";")[0].strip().lower()
    if media in IMAGE_TYPES:
        payloads = [body]
    elif media == JSON_TYPE:
        payloads = _json_payloads(body)
    else:
        raise HTTPError(
            415,
            f"unsupported Content-Type {content_type!r}; use one of "
            f"{', '.join((*IMAGE_TYPES, JSON_TYPE))}",
        )
    if not payloads or not all(payloads):
        raise HTTPError(400, "empty request body; send an image")
    images = []
    for number, payload in enumerate(payloads):
        try:
            images.append(decode_bytes(payload))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise HTTPError(
                400, f"image {number} cannot be decoded ({error}); send a valid PNG or JPEG"
            ) from error
    return images


def _json_payloads(body: bytes) -> list[bytes]:
    try:
        document = json.loads(body)
        instances = document["instances"]
        assert isinstance(instances, list)
        return [
            base64.b64decode(item["b64"] if isinstance(item, dict) else item, validate=True)
            for item in instances
        ]
    except (ValueError, KeyError, TypeError, AssertionError, binascii.Error) as error:
        raise HTTPError(400, 'JSON body must be {"instances": [<base64 image>, ...]}') from error


def max_payload_bytes() -> int:
    """The request size limit from ``SAGEMAKER_MAX_PAYLOAD_IN_MB`` (default 6 MB)."""
    value = os.environ.get(contract.MAX_PAYLOAD_ENV, "")
    megabytes = (
        float(value) if value.replace(".", "", 1).isdigit() else contract.DEFAULT_MAX_PAYLOAD_MB
    )
    return int(megabytes * 1024 * 1024)


def make_handler(predictor: Predictor, limit: int) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one predictor."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

        def send_json(self, status: int, value: Any) -> None:
            data = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", JSON_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (stdlib name)
            if self.path == "/ping":
                self.send_json(200, {"status": "healthy"})
            elif self.path == "/execution-parameters":
                self.send_json(
                    200,
                    {
                        "MaxConcurrentTransforms": 1,
                        "BatchStrategy": "MULTI_RECORD",
                        "MaxPayloadInMB": limit // (1024 * 1024),
                    },
                )
            else:
                self.send_json(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:  # noqa: N802 (stdlib name)
            length = int(self.headers.get("Content-Length") or 0)
            if self.path != "/invocations":
                self.drain(length)
                self.send_json(404, {"error": f"no route {self.path}"})
                return
            if length > limit:
                self.drain(length)
                self.send_json(
                    413,
                    {
                        "error": f"payload of {length} bytes exceeds the limit of "
                        f"{limit} bytes ({contract.MAX_PAYLOAD_ENV})"
                    },
                )
                return
            body = self.rfile.read(length)
            try:
                images = decode_request(self.headers.get("Content-Type", ""), body)
                self.send_json(200, {"predictions": predictor.predict(images)})
            except HTTPError as error:
                self.send_json(error.status, {"error": str(error)})

        def drain(self, length: int) -> None:
            """Read and drop a body we will not use, so the client sees our answer."""
            if length > DRAIN_LIMIT:
                self.close_connection = True
                return
            while length > 0:
                length -= len(self.rfile.read(min(length, 1 << 20)) or b"x" * length)

    return Handler


def build_server(model_dir: Path, host: str, port: int) -> ThreadingHTTPServer:
    """Load the model and bind the server (port 0 picks a free port)."""
    torch.set_num_threads(contract.num_cpus())
    with tempfile.TemporaryDirectory(prefix="model-") as scratch:
        model, meta = load_model(model_files_dir(model_dir, Path(scratch)))
    server = ThreadingHTTPServer(
        (host, port), make_handler(Predictor(model, meta), max_payload_bytes())
    )
    server.daemon_threads = True
    return server


def build_parser() -> argparse.ArgumentParser:
    """Optional overrides; SageMaker starts ``serve`` without arguments."""
    parser = argparse.ArgumentParser(
        prog="python3 -m mlops_container.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-dir", type=Path, default=contract.path(contract.MODEL_PATH))
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get(contract.BIND_PORT_ENV) or contract.DEFAULT_PORT),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: load the model, then serve until interrupted."""
    args = build_parser().parse_args(argv)
    server = build_server(args.model_dir, args.host, args.port)
    print(f"serving {args.model_dir} on {args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
