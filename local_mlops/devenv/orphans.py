"""What a killed CLI leaves behind, found and cleared by the next command.

A run whose CLI was killed (``kill -9``, a closed terminal, a crash) leaves its record saying
Executing, its job containers and its temp folders. Commands that open the local stores (``run``,
``runs``, ``models``) and ``status`` call ``reconcile``: records whose owner process is gone are
marked Failed with the reason; containers and folders of this project whose owner is gone are
removed. Anything whose owner still runs, ran on another host, or carries no owner (endpoints,
the emulator, folders of older versions) is left alone.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_mlops.devenv import dockerhost
from local_mlops.devenv.processes import (
    EXECUTION_LABEL,
    OWNER_LABEL,
    PROJECT_LABEL,
    Owner,
    folder_owner,
    work_root,
)


@dataclass(frozen=True)
class ProjectContainer:
    """A container the project started, and whether the process it belongs to still runs."""

    id: str
    name: str
    state: str
    execution: str
    owner: Owner | None

    @property
    def orphaned(self) -> bool:
        return self.owner is not None and self.owner.alive() is False


@dataclass
class Reconciled:
    runs: list[dict[str, Any]] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)

    def messages(self) -> list[str]:
        """One line per finding, for the command's stderr."""
        lines = [
            f"Run {r['ExecutionId']} was left Executing: marked Failed ({r['FailureReason']})."
            for r in self.runs
        ]
        if self.containers or self.folders:
            lines.append(
                f"Removed {len(self.containers)} leftover container(s) and "
                f"{len(self.folders)} temp folder(s) of stopped commands."
            )
        return lines


def owner_gone_reason(record: dict[str, Any]) -> str | None:
    """Why a running execution cannot still be running, or None while its CLI lives."""
    owner = Owner.from_record(record.get("Owner"))
    if owner is None or owner.alive() is not False:
        return None
    return f"the CLI that ran it stopped (pid {owner.pid})"


def project_containers(project: str) -> list[ProjectContainer]:
    """Every container of this project (any state); empty when Docker is not reachable."""
    if not dockerhost.docker_available():
        return []
    found = []
    client = dockerhost.docker_client()
    for container in client.containers.list(
        all=True, filters={"label": f"{PROJECT_LABEL}={project}"}
    ):
        labels = container.labels or {}
        owner_label = labels.get(OWNER_LABEL)
        found.append(
            ProjectContainer(
                id=container.id,
                name=container.name,
                state=container.status,
                execution=labels.get(EXECUTION_LABEL, ""),
                owner=Owner.from_label(owner_label) if owner_label else None,
            )
        )
    return found


def remove_containers(ids: list[str]) -> None:
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120, check=False)


def orphaned_folders(project: str) -> list[Path]:
    """Temp folders claimed by a process of this project that is gone."""
    folders = []
    for folder in sorted(work_root().glob("local-mlops-*")):
        owner, owner_project = folder_owner(folder)
        if owner is not None and owner_project == project and owner.alive() is False:
            folders.append(folder)
    return folders


def reconcile(project: str, runstore: Any = None) -> Reconciled:
    """Fail the runs, and remove the containers and temp folders, that a gone CLI left."""
    done = Reconciled()
    if runstore is not None:
        done.runs = runstore.fail_orphans(owner_gone_reason)
    orphans = [c for c in project_containers(project) if c.orphaned]
    remove_containers([c.id for c in orphans])
    done.containers = [c.name for c in orphans]
    for folder in orphaned_folders(project):
        shutil.rmtree(folder, ignore_errors=True)
        done.folders.append(folder)
    return done
