"""``python -m durable_s3 --data DIR [-H HOST] [-p PORT]``: a moto server that persists S3."""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

LOCK_NAME = ".lock"  # held by the one server that serves a data folder


def _exit_when_unused(users: Path) -> None:
    """Exit once nobody holds a shared lock on ``users`` (the commands using this server)."""
    handle = users.open("a")
    time.sleep(1.0)  # let the starting command take its lock
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            time.sleep(0.5)
            continue
        # Keep the lock until the process is gone: a new user waits, then starts a fresh server.
        os.kill(os.getpid(), signal.SIGTERM)
        return


def _lock_data_dir(data: Path) -> IO[str] | None:
    data.mkdir(parents=True, exist_ok=True)
    handle = (data / LOCK_NAME).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="durable_s3", description=__doc__)
    parser.add_argument("--data", required=True, help="folder the buckets are persisted to")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument(
        "--no-fsync", action="store_true", help="skip fsync (survives a kill, not a power cut)"
    )
    parser.add_argument(
        "--exit-when-unused",
        metavar="LOCKFILE",
        help="exit when no process holds a shared flock on LOCKFILE (a shared embedded server)",
    )
    args = parser.parse_args(argv)
    lock = _lock_data_dir(Path(args.data))
    if lock is None:
        print(f"durable_s3: another emulator serves {args.data}", file=sys.stderr, flush=True)
        return 3

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

    if args.exit_when_unused:
        watcher = threading.Thread(
            target=_exit_when_unused, args=(Path(args.exit_when_unused),), daemon=True
        )
        watcher.start()

    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
