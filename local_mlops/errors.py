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


def brief_error(exc: Exception) -> str:
    """One line for an AWS error (an emulator's HTTP 500 body is a whole HTML page)."""
    response = getattr(exc, "response", None) or {}
    if not response:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    error = response.get("Error", {})
    code = str(error.get("Code", "error"))
    message = str(error.get("Message", "")).strip()
    if message and "\n" not in message and "<" not in message:
        return f"{code}: {message}"
    http = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
    operation = getattr(exc, "operation_name", "the call")
    return f"{operation} answered HTTP {http}" + (f" ({code})" if code != http else "")
