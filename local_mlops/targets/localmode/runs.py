"""One local pipeline execution: its own temp root, labels on its containers, cleanup after.

``ExtendedLocalPipeline.start`` builds the extended execution and executor classes (the SDK's
``_LocalPipeline.start`` hard-codes its own) and removes the run's containers and temp folders when
the run ends. While it runs, a watchdog polls the S3 emulator: if it dies, the run's containers are
stopped at once and the run fails within seconds, recorded as Failed (see ``watchdog.py``).
SIGINT/SIGTERM (as ``StopRequested``, see ``devenv/processes.py``) end the run as Stopped; a run
whose process is killed outright is reconciled by the next command (``devenv/orphans.py``) through
the same labels and the temp root's ``owner.json``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from uuid import uuid4

from sagemaker.local.entities import _LocalPipeline

from local_mlops.devenv.processes import (
    EXECUTION_LABEL,
    StopRequested,
    claim_folder,
    container_labels,
    stop_requested,
)
from local_mlops.errors import LocalMlopsError
from local_mlops.targets.localmode.execution import (
    ExtendedPipelineExecution,
    ExtendedPipelineExecutor,
)
from local_mlops.targets.localmode.watchdog import EmulatorWatchdog

logger = logging.getLogger(__name__)

__all__ = ["EXECUTION_LABEL", "ExtendedLocalPipeline", "cleanup_run", "remove_containers"]


class ExtendedLocalPipeline(_LocalPipeline):
    """Starts executions with the extended execution and executor classes."""

    def start(self, **kwargs: Any) -> ExtendedPipelineExecution:  # type: ignore[override]
        session = self.local_session
        execution_id = uuid4().hex[:12]
        project = getattr(session, "project", "")
        run_root = _run_root(session, execution_id, project)
        previous_config = session.config
        session.config = _run_config(previous_config, run_root, execution_id, project)
        execution: ExtendedPipelineExecution | None = None
        try:
            execution = ExtendedPipelineExecution(
                execution_id=execution_id,
                pipeline=self.pipeline,
                local_session=session,
                **kwargs,
            )
            self._executions[execution_id] = execution
            self.last_modified_time = dt.datetime.now().timestamp()
            logger.info("Starting execution %s of pipeline %s", execution_id, self.pipeline.name)
            _execute_watched(execution, session)
            # A signal can be swallowed on the way (an SDK cleanup that raised instead).
            stopped = stop_requested()
            if stopped is not None and execution.status != "Succeeded":
                raise stopped
            return execution
        except KeyboardInterrupt as stop:
            name = getattr(stop, "signal_name", "SIGINT")
            if execution is not None:
                execution.mark_stopped(f"stopped by {name}")
            if isinstance(stop, StopRequested):
                stop.execution_id = execution_id
            raise
        finally:
            session.config = previous_config
            cleanup_run(execution_id, run_root)


def _execute_watched(execution: ExtendedPipelineExecution, session: Any) -> Any:
    """Execute; if the S3 emulator dies meanwhile, stop the run's containers and fail fast."""
    url = getattr(session, "s3_endpoint_url", None)
    execution_id = execution.pipeline_execution_name
    if not url:
        return ExtendedPipelineExecutor(execution, session).execute()

    def lost() -> None:
        session.emulator_lost = True  # no retries: nothing can succeed without the bucket
        remove_containers(execution_id)

    session.emulator_lost = False
    with EmulatorWatchdog(url, lost) as watchdog:
        result = ExtendedPipelineExecutor(execution, session).execute()
    if watchdog.lost:
        reason = f"the S3 emulator at {url} stopped answering during the run"
        execution.fail_everything(reason)
        raise LocalMlopsError(
            f"{reason}; run {execution_id} is recorded as Failed "
            "(what finished steps wrote is kept on disk)",
            "local-mlops up, then run again",
        )
    return result


def _run_root(session: Any, execution_id: str, project: str) -> str:
    configured = ((session.config or {}).get("local") or {}).get("container_root")
    parent = os.path.abspath(configured) if configured else tempfile.gettempdir()
    root = os.path.join(parent, f"local-mlops-run-{execution_id}")
    claim_folder(Path(root), project, Execution=execution_id)
    return root


def _run_config(config: dict | None, run_root: str, execution_id: str, project: str) -> dict:
    """The session's local config for one run: its own temp root and labels on its containers."""
    local = dict((config or {}).get("local") or {})
    container_config = dict(local.get("container_config") or {})
    labels = dict(container_config.get("labels") or {})
    labels.update(container_labels(project, execution_id))
    container_config["labels"] = labels
    local["container_config"] = container_config
    local["container_root"] = run_root
    return {**(config or {}), "local": local}


def cleanup_run(execution_id: str, run_root: str) -> None:
    """Remove the containers (by label) and temp folders one run created; leave others alone."""
    remove_containers(execution_id)
    shutil.rmtree(run_root, ignore_errors=True)


def remove_containers(execution_id: str) -> None:
    """Remove (killing if running) the containers of one execution, found by label."""
    try:
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label={EXECUTION_LABEL}={execution_id}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.split()
        if ids:
            subprocess.run(
                ["docker", "rm", "-f", *ids], capture_output=True, timeout=60, check=False
            )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("could not remove the containers of execution %s: %s", execution_id, exc)
