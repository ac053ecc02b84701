"""Project exceptions and the failure contract shared by every entry point.

A user error (bad data, bad hyperparameter) raises :class:`UserError`; the entry point
writes the reason where SageMaker looks for it, prints one line to stderr and exits 2.
Anything else is a bug: the traceback is printed and written too, and the exit code is 1.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from .privileges import drop_root

USER_ERROR_EXIT = 2
UNEXPECTED_ERROR_EXIT = 1


class UserError(Exception):
    """A problem the user can fix (data, hyperparameters, inputs); the message names the fix."""


class HTTPError(Exception):
    """An inference request error carrying the HTTP status to answer with.

    ``close`` asks the server to close the connection after answering (the rest of the request
    cannot be read or trusted).
    """

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


def write_reason(reason_file: Path, text: str) -> None:
    """Write the failure reason where SageMaker reads it (best effort parent creation)."""
    reason_file.parent.mkdir(parents=True, exist_ok=True)
    reason_file.write_text(text + "\n", encoding="utf-8")


def exit_now(code: int) -> NoReturn:
    """End a job's process with ``code``, skipping the interpreter's teardown.

    Called by the torch steps' ``__main__`` once the job's outputs are written and closed: what a
    normal exit adds then is unloading torch and its thread pools, on every Train and Evaluate
    container of every run (see benchmarks/pipeline_overhead.py).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_entrypoint(
    job: Callable[[Sequence[str] | None], None],
    argv: Sequence[str] | None,
    reason_file: Path,
) -> int:
    """Run ``job(argv)`` under the failure contract and return the process exit code."""
    try:
        drop_root()
        job(argv)
    except UserError as error:
        write_reason(reason_file, str(error))
        print(f"error: {error}", file=sys.stderr, flush=True)
        return USER_ERROR_EXIT
    except Exception as error:  # report, never swallow: the exit code says it failed
        details = traceback.format_exc()
        write_reason(reason_file, f"unexpected error: {error!r}\n{details}")
        print(details, file=sys.stderr, flush=True)
        return UNEXPECTED_ERROR_EXIT
    return 0
