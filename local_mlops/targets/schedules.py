"""Monitoring schedules on either target: the local scheduler, or EventBridge Scheduler."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from local_mlops.config import Settings


def create(
    settings: Settings,
    endpoint: str,
    every: str,
    window: str | None,
    config: Path | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Schedule the monitoring of ``endpoint``; the schedule as ``monitor schedules`` shows it."""
    if settings.target == "cloud":
        from local_mlops.monitoring import cloud_schedule
        from local_mlops.targets.endpoints import opened

        with opened(settings, say) as (target, _):
            return cloud_schedule.create(settings, target, endpoint, every, window)
    from local_mlops.monitoring import schedule

    entry = schedule.add(settings, endpoint, every, window)
    entry["scheduler_pid"] = schedule.start_scheduler(settings, config)
    return entry


def delete(settings: Settings, endpoint: str | None) -> list[str]:
    """Remove the schedule of ``endpoint`` (None: all); the endpoints unscheduled."""
    if settings.target == "cloud":
        from local_mlops.monitoring import cloud_schedule

        return cloud_schedule.delete(settings, endpoint)
    from local_mlops.monitoring import schedule

    removed = schedule.remove(settings, endpoint)
    if not schedule.load(schedule.folder(settings)):
        schedule.stop_scheduler(settings)
    return removed


def listed(settings: Settings) -> list[dict[str, Any]]:
    """The monitoring schedules with their next and last runs."""
    if settings.target == "cloud":
        from local_mlops.monitoring import cloud_schedule

        return cloud_schedule.list_schedules(settings)
    from local_mlops.monitoring import schedule

    return [
        {"endpoint": name, **entry}
        for name, entry in schedule.load(schedule.folder(settings)).items()
    ]
