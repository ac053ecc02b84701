"""``local-mlops runs``: past pipeline executions and their steps."""

from __future__ import annotations

import datetime as dt

import typer
from rich.table import Table

from local_mlops.cli.common import (
    JSON_HELP,
    out,
    print_json,
    profile_option,
    region_option,
    settings_from,
)
from local_mlops.cli.stores import opened_target

app = typer.Typer(help="Past executions.\n\nExample: local-mlops runs list", no_args_is_help=True)
TARGET_HELP = "Look at SageMaker instead of the local runs."


def _when(value: object) -> dt.datetime | None:
    """A timestamp from a run record: ISO 8601 (local), datetime (SageMaker) or epoch seconds."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, str) and value:
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _duration(start: object, end: object) -> str:
    begin, finish = _when(start), _when(end)
    return f"{(finish - begin).total_seconds():.1f} s" if begin and finish else ""


def _started(value: object) -> str:
    when = _when(value)
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else ""


@app.command("list")
def list_runs(
    ctx: typer.Context,
    cloud: bool = typer.Option(False, "--cloud", help=TARGET_HELP),
    region: str | None = region_option(),
    profile: str | None = profile_option(),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List executions, newest first.

    Example: local-mlops runs list --json
    """
    settings = settings_from(ctx, target="cloud" if cloud else None, region=region, profile=profile)
    with opened_target(settings) as target:
        records = target.runs.list()
    if as_json:
        print_json(records)
        return
    table = Table("execution", "status", "started", "duration", "steps", title="runs")
    for record in records:
        table.add_row(
            record["ExecutionId"],
            record.get("Status", ""),
            _started(record.get("StartTime")),
            _duration(record.get("StartTime"), record.get("EndTime")),
            str(len(record.get("Steps", []))),
        )
    out.print(table)


@app.command("describe")
def describe(
    ctx: typer.Context,
    execution: str = typer.Argument(..., help="Execution id or ARN (see `runs list`)."),
    cloud: bool = typer.Option(False, "--cloud", help=TARGET_HELP),
    region: str | None = region_option(),
    profile: str | None = profile_option(),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show one execution: each step's status, duration, failure, and why it was or was not
    served from the cache.

    Example: local-mlops runs describe 3d59f68bc52c
    """
    settings = settings_from(ctx, target="cloud" if cloud else None, region=region, profile=profile)
    with opened_target(settings) as target:
        record = target.runs.get(execution)
    if as_json:
        print_json(record)
        return
    out.print(
        f"[bold]{record['ExecutionId']}[/bold]  {record.get('Status')}  "
        f"{record.get('FailureReason') or ''}"
    )
    out.print(f"training instances: {instance_count(record)}")
    table = Table("step", "type", "status", "duration", "attempts", "cache", "note")
    for step in record.get("Steps", []):
        table.add_row(
            step.get("StepName", ""),
            step.get("StepType", ""),
            step.get("StepStatus", ""),
            _duration(step.get("StartTime"), step.get("EndTime")),
            str(step.get("Attempts", "")),
            cache_note(step),
            str(step.get("FailureReason") or "")[:120],
        )
    out.print(table)


def instance_count(record: dict) -> int:
    """Training hosts of the run (its TrainingInstanceCount; 1, the default, when not passed)."""
    value = (record.get("Parameters") or {}).get("TrainingInstanceCount", 1)
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 1


def cache_note(step: dict) -> str:
    """Why the step was or was not served from the cache (records before reasons: hit or blank)."""
    decision = step.get("Cache") or {}
    if decision.get("Reason"):
        return str(decision["Reason"])
    return "cache hit" if step.get("CacheHitResult") else ""
