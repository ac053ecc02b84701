"""The server's settings, read once from the environment (names in :mod:`mlops_container.contract`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .. import contract

BACKENDS = ("auto", "onnx", "torch")


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true"}


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server reads from its environment."""

    port: int = contract.DEFAULT_PORT
    max_payload_bytes: int = contract.DEFAULT_MAX_PAYLOAD_MB * 1024 * 1024
    max_batch: int = contract.DEFAULT_MAX_BATCH
    read_timeout: float = contract.DEFAULT_READ_TIMEOUT_SECONDS
    intra_op_threads: int = 2
    backend: str = "auto"
    access_log: bool = False
    top_k: int = 1  # the length of `top_k` when the request's custom attributes do not set it
    # Batch transform: an unreadable record (a 400) is answered 200 with {"error", "status"},
    # so SageMaker writes it to the record's .out instead of failing the whole job.
    record_errors: bool = False
    unix_socket: str = ""  # also listen here (local endpoints' router); "" = TCP only

    @property
    def max_payload_mb(self) -> float:
        return self.max_payload_bytes / (1024 * 1024)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerSettings:
        """Settings from ``env`` (default ``os.environ``); ValueError names a bad variable."""
        env = os.environ if env is None else env
        backend = env.get(contract.SERVING_BACKEND_ENV, "auto").strip().lower() or "auto"
        if backend not in BACKENDS:
            raise ValueError(
                f"{contract.SERVING_BACKEND_ENV}={backend!r}; use one of {', '.join(BACKENDS)}"
            )
        megabytes = _number(env, contract.MAX_PAYLOAD_ENV, contract.DEFAULT_MAX_PAYLOAD_MB, 0.001)
        threads = _number(env, contract.INTRA_OP_THREADS_ENV, contract.num_cpus(), 1)
        return cls(
            port=int(_number(env, contract.BIND_PORT_ENV, contract.DEFAULT_PORT, 0)),
            max_payload_bytes=int(megabytes * 1024 * 1024),
            max_batch=int(_number(env, contract.MAX_BATCH_ENV, contract.DEFAULT_MAX_BATCH, 1)),
            read_timeout=_number(
                env, contract.READ_TIMEOUT_ENV, contract.DEFAULT_READ_TIMEOUT_SECONDS, 0.01
            ),
            intra_op_threads=int(threads),
            backend=backend,
            access_log=_flag(env, contract.ACCESS_LOG_ENV),
            top_k=int(_number(env, contract.TOP_K_ENV, 1, 1)),
            record_errors=_flag(env, contract.RECORD_ERRORS_ENV),
            unix_socket=env.get(contract.UNIX_SOCKET_ENV, "").strip(),
        )
