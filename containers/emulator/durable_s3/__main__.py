"""``python -m durable_s3 --data DIR [-H HOST] [-p PORT]``: a moto server that persists S3."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="durable_s3", description=__doc__)
    parser.add_argument("--data", required=True, help="folder the buckets are persisted to")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument(
        "--no-fsync", action="store_true", help="skip fsync (survives a kill, not a power cut)"
    )
    args = parser.parse_args(argv)

    from werkzeug.serving import run_simple

    from durable_s3.server import make_app

    def stop(signum: int, frame: Any) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    app = make_app(args.data, fsync=not args.no_fsync)
    restored = app.status["restored"]
    print(
        f"durable_s3: restored {restored['objects']} objects in {restored['buckets']} buckets "
        f"from {args.data} in {restored['seconds']} s",
        file=sys.stderr,
        flush=True,
    )
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
