"""``local-mlops monitor``: drift and model-quality monitoring on an endpoint's captured data."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from local_mlops.cli.common import JSON_HELP, out, print_json, say, settings_from
from local_mlops.cli.stores import opened_target
from local_mlops.monitoring.run import run_monitor
from local_mlops.serving.captured import parse_window

app = typer.Typer(
    help=(
        "Drift and model-quality monitoring on captured data.\n\n"
        "Example: local-mlops monitor run --window 1h --json"
    ),
    no_args_is_help=True,
)


def render(report: dict[str, Any]) -> None:
    """The violations as a table, then one line with the counts and where the report is."""
    if report["violations"]:
        table = Table("feature", "check", "description", title="violations")
        for violation in report["violations"]:
            table.add_row(
                violation["feature_name"],
                violation["constraint_check_type"],
                violation["description"],
            )
        out.print(table)
    out.print(
        f"{report['status']}: {report['records']} records ({report['readable']} readable), "
        f"{report['violation_count']} violations; report: {report['report_uri']}"
    )


@app.command("run")
def run(
    ctx: typer.Context,
    endpoint: str = typer.Option(
        None, "--endpoint", help="Endpoint whose capture to read (default: endpoint_name)."
    ),
    window: str = typer.Option("1h", "--window", help="How far back to look: 30m, 1h, 7d."),
    version: int = typer.Option(
        None, "--version", help="Model version to compare with (default: newest Approved)."
    ),
    cloud: bool = typer.Option(False, "--cloud", help="Run the job on SageMaker."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Compare the last WINDOW of captured requests with the model version's baseline.

    Runs the monitoring job (a processing job; local mode locally) and writes statistics.json,
    constraint_violations.json and summary.json to s3://BUCKET/monitoring/ENDPOINT/TIMESTAMP/.
    Violations are findings: the exit code is 0 with them, 1 only when the job fails.

    Example: local-mlops monitor run --endpoint local-mlops-endpoint --window 1h --json
    """
    settings = settings_from(ctx, target="cloud" if cloud else None)
    duration = parse_window(window)
    with opened_target(settings) as target:
        report = run_monitor(
            settings, target, endpoint or settings.endpoint_name, duration, version, say
        )
    if as_json:
        print_json(report)
    else:
        render(report)


@app.command("schedule")
def schedule(
    ctx: typer.Context,
    every: str = typer.Option(..., "--every", help="How often: 30m, 1h, 1d."),
    endpoint: str = typer.Option(
        None, "--endpoint", help="Endpoint to monitor (default: endpoint_name)."
    ),
    window: str = typer.Option(None, "--window", help="Window of each run (default: --every)."),
    cloud: bool = typer.Option(False, "--cloud", help="An EventBridge Scheduler schedule."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Run the monitoring job on a timer, each run over the last WINDOW.

    Locally a scheduler process (it outlives this command; `down` stops it, `up` starts it
    again) runs `monitor run`; in the cloud EventBridge Scheduler starts the processing job.

    Example: local-mlops monitor schedule --every 1h --endpoint local-mlops-endpoint
    """
    from local_mlops.targets import schedules as service

    settings = settings_from(ctx, target="cloud" if cloud else None)
    name = endpoint or settings.endpoint_name
    entry = service.create(settings, name, every, window, (ctx.obj or {}).get("config"), say)
    if as_json:
        print_json(entry)
        return
    out.print(
        f"[green]✓[/green] monitoring {name} every {entry['every']} "
        f"(window {entry['window']}); next run {entry.get('next_run', 'per the schedule')}"
    )


@app.command("unschedule")
def unschedule(
    ctx: typer.Context,
    endpoint: str = typer.Option(
        None, "--endpoint", help="Endpoint to stop monitoring (default: endpoint_name)."
    ),
    everything: bool = typer.Option(False, "--all", help="Remove every schedule."),
    cloud: bool = typer.Option(False, "--cloud", help="The EventBridge Scheduler schedule."),
) -> None:
    """Stop the timed monitoring of an endpoint (the reports stay in the bucket).

    Example: local-mlops monitor unschedule --endpoint local-mlops-endpoint
    """
    from local_mlops.targets import schedules as service

    settings = settings_from(ctx, target="cloud" if cloud else None)
    removed = service.delete(settings, None if everything else endpoint or settings.endpoint_name)
    out.print(f"[green]✓[/green] unscheduled: {', '.join(removed) or 'nothing'}")


@app.command("schedules")
def schedules(
    ctx: typer.Context,
    cloud: bool = typer.Option(False, "--cloud", help="EventBridge Scheduler's schedules."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List the monitoring schedules, their next and last runs.

    Example: local-mlops monitor schedules --json
    """
    from local_mlops.targets import schedules as service

    rows = service.listed(settings_from(ctx, target="cloud" if cloud else None))
    if as_json:
        print_json(rows)
        return
    table = Table("endpoint", "every", "window", "next run", "last run", title="schedules")
    for row in rows:
        last = row.get("last_run") or {}
        summary = (
            f"{last.get('started')}: {last.get('violation_count')} violations"
            if last.get("report_uri")
            else str(last.get("error") or "")
        )
        table.add_row(
            row["endpoint"], row["every"], row["window"], row.get("next_run", ""), summary
        )
    out.print(table)
