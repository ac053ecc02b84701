"""The project's one exception type: every user-facing failure names its fix."""

from __future__ import annotations


class LocalMlopsError(Exception):
    """A failure the user can act on.

    ``fix`` says what to do about it; the CLI prints ``message`` and ``fix`` on one red line
    and exits 1.
    """

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} — {self.fix}" if self.fix else self.message
