"""The append-only labeling journal: every action a person takes, one fsynced JSON line each.

The journal, not the manifest, is what makes labels durable: each label, skip and undo is
appended and fsynced before the server answers, and the manifest is rebuilt from it. A crash
can at worst leave a torn last line, which replay drops (and cuts off the file) because the
server had not yet confirmed that action.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, BinaryIO

from local_mlops.errors import LocalMlopsError


def fsync_dir(path: Path) -> None:
    """Make a create/rename in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """One JSON object per line in ``path``; ``replay`` once, then ``append``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self.repaired = False

    def replay(self) -> list[dict[str, Any]]:
        """Read every complete event; cut off a torn last line left by an interrupted write."""
        if not self.path.exists():
            return []
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise LocalMlopsError(
                f"cannot read the labeling journal {self.path}: {exc}",
                "check the file's permissions",
            ) from exc
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        events = [self._parse(line, number) for number, line in enumerate(lines, 1) if line]
        if tail:
            event = self._try_parse(tail)
            if event is None:
                # The write that made this line never finished, so it was never confirmed.
                self._truncate(len(data) - len(tail))
            else:
                events.append(event)
                self._truncate(len(data), add_newline=True)
            self.repaired = True
        return events

    def _parse(self, line: bytes, number: int) -> dict[str, Any]:
        event = self._try_parse(line)
        if event is None:
            raise LocalMlopsError(
                f"line {number} of the labeling journal {self.path} is corrupt",
                f"restore the file from a backup, or delete line {number} to continue without it",
            )
        return event

    @staticmethod
    def _try_parse(line: bytes) -> dict[str, Any] | None:
        try:
            value = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        return value if isinstance(value, dict) and isinstance(value.get("op"), str) else None

    def _truncate(self, size: int, add_newline: bool = False) -> None:
        with self.path.open("r+b") as handle:
            handle.truncate(size)
            if add_newline:
                handle.seek(size)
                handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def append(self, event: dict[str, Any]) -> None:
        """Write one event and fsync it: once this returns, the event survives a crash."""
        if self._handle is None:
            created = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("ab")
            if created:
                fsync_dir(self.path.parent)
        line = json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n"
        start = self._handle.tell()
        try:
            self._handle.write(line.encode("utf-8"))
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            # Take back a partial line so later appends do not glue onto it.
            with contextlib.suppress(OSError):
                self._handle.truncate(start)
            raise LocalMlopsError(
                f"cannot write the labeling journal {self.path}: {exc}",
                "free disk space or fix the folder's permissions, then label again",
            ) from exc

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
