"""Deployments started from the dashboard: the CLI's own deploy, on a thread, with its progress.

Approving a version in the dashboard does what ``local-mlops models approve N`` does: the
approval (``targets.endpoints.approve``), then ``targets.endpoints.deploy`` of that version.
The deploy runs on a thread because it takes seconds to minutes (containers start, a blue/green
update bakes each traffic step); every line it says is kept with its time, so the page can poll
``/api/deployments/ID`` and show the progress, then the endpoint or the error with its fix.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError

# deploy(settings, say, version=..., endpoint=...) -> the endpoint's list view
Deploy = Callable[..., dict[str, Any]]
RUNNING, SUCCEEDED, FAILED = "Running", "Succeeded", "Failed"
KEEP = 20  # finished deployments remembered


@dataclass
class Deployment:
    id: str
    version: int
    endpoint: str
    state: str = RUNNING
    lines: list[tuple[str, str]] = field(default_factory=list)  # (time, text)
    error: str = ""
    fix: str = ""
    view: dict[str, Any] = field(default_factory=dict)
    started: str = field(default_factory=lambda: _now())
    ended: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "endpoint": self.endpoint,
            "state": self.state,
            "lines": [{"time": t, "text": x} for t, x in self.lines],
            "error": self.error,
            "fix": self.fix,
            "endpoint_view": self.view,
            "started": self.started,
            "ended": self.ended,
        }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Deployments:
    """Deployments of this dashboard process, newest last."""

    def __init__(self, settings: Settings, deploy: Deploy | None = None) -> None:
        self.settings = settings
        self._deploy = deploy
        self._items: dict[str, Deployment] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def deploy_function(self) -> Deploy:
        if self._deploy is not None:
            return self._deploy
        from local_mlops.targets import endpoints

        return endpoints.deploy

    def start(self, version: int, endpoint: str | None = None) -> Deployment:
        """Deploy ``version`` on a thread; refused while this endpoint has one running."""
        name = endpoint or self.settings.endpoint_name
        with self._lock:
            busy = [d for d in self._items.values() if d.endpoint == name and d.state == RUNNING]
            if busy:
                raise LocalMlopsError(
                    f"endpoint {name} is already being deployed (version {busy[0].version})",
                    "wait for that deployment to finish, then approve again",
                )
            job = Deployment(f"d{next(self._ids)}", version, name)
            self._items[job.id] = job
            for old in [d.id for d in self._items.values() if d.state != RUNNING][:-KEEP]:
                del self._items[old]
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return job

    def _run(self, job: Deployment) -> None:
        def say(text: str) -> None:
            with self._lock:
                job.lines.append((_now(), str(text)))

        say(f"Deploying version {job.version} to endpoint {job.endpoint} ...")
        try:
            view = self.deploy_function()(
                self.settings, say, version=job.version, endpoint=job.endpoint
            )
        except LocalMlopsError as exc:
            self._finish(job, FAILED, error=exc.message, fix=exc.fix or "")
        except Exception as exc:  # shown on the page: the dashboard keeps serving
            self._finish(job, FAILED, error=f"{type(exc).__name__}: {exc}")
        else:
            say(f"Endpoint {view.get('name')} serves version {view.get('version')}.")
            self._finish(job, SUCCEEDED, view=dict(view))

    def _finish(self, job: Deployment, state: str, **values: Any) -> None:
        with self._lock:
            for key, value in values.items():
                setattr(job, key, value)
            job.state, job.ended = state, _now()

    def get(self, job_id: str) -> Deployment:
        with self._lock:
            job = self._items.get(job_id)
        if job is None:
            raise LocalMlopsError(
                f"deployment {job_id} does not exist", "this dashboard has not started it"
            )
        return job

    def running(self) -> list[Deployment]:
        with self._lock:
            return [d for d in self._items.values() if d.state == RUNNING]

    def latest(self) -> list[Deployment]:
        with self._lock:
            return list(self._items.values())[::-1]
