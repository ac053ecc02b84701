"""``local-mlops monitor``: drift and model-quality monitoring on an endpoint's captured data."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from local_mlops.cli.common import JSON_HELP, out, print_json, say, settings_from
from local_mlops.cli.stores import opened_target
from local_mlops.monitoring.run import parse_window, run_monitor

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
