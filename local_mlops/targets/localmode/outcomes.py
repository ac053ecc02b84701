"""What a local job left behind, and the error that carries it (shared by the client and executors)."""

from __future__ import annotations

from dataclasses import dataclass, field

from local_mlops.targets.localmode.retry import Failure

LOG_TAIL_LINES = 40


@dataclass
class JobOutcome:
    """What one local job left behind: its container's exit state and log."""

    job_name: str
    container_root: str | None
    exit_code: int | None = None
    oom_killed: bool = False
    log: str = ""
    failure: Failure | None = None
    container_ids: list[str] = field(default_factory=list)

    @property
    def log_tail(self) -> list[str]:
        return self.log.splitlines()[-LOG_TAIL_LINES:]


class JobFailedError(RuntimeError):
    """A local job failed; carries the container's exit state and log tail."""

    def __init__(self, message: str, outcome: JobOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome
