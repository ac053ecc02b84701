"""``local-mlops cloud``: the AWS account side of --cloud (one CloudFormation stack) and teardown."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from local_mlops import account
from local_mlops.cli.common import (
    JSON_HELP,
    err,
    out,
    print_json,
    profile_option,
    region_option,
    say,
    settings_from,
)
from local_mlops.errors import LocalMlopsError

app = typer.Typer(
    help=(
        "The AWS account side of --cloud: execution role, bucket and ECR repositories as one "
        "CloudFormation stack; what costs money; teardown.\n\n"
        "Example: local-mlops cloud init --region eu-west-1"
    ),
    no_args_is_help=True,
)
YES_HELP = "Do not ask for confirmation."


def _grouped(gaps: list[Any]) -> str:
    """'resource: what, what; resource: what' for a list of unmet promises."""
    by_resource: dict[str, list[str]] = {}
    for gap in gaps:
        resource, what = (
            (gap.resource, gap.what) if hasattr(gap, "what") else (gap["resource"], gap["what"])
        )
        by_resource.setdefault(resource, []).append(what)
    return "; ".join(f"{r}: {', '.join(w)}" for r, w in by_resource.items())


def _asker(yes: bool) -> account.Confirm:
    return lambda question: yes or typer.confirm(question, err=True)


def _settings(ctx: typer.Context, region: str | None, profile: str | None) -> Any:
    return settings_from(ctx, region=region, profile=profile, target="cloud")


@app.command("init")
def init(
    ctx: typer.Context,
    region: str | None = region_option(),
    profile: str | None = profile_option(),
    yes: bool = typer.Option(False, "--yes", "-y", help=YES_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Create or update the project's stack and write its names into local-mlops.toml.

    The stack (local_mlops/account/stack.yaml) holds the execution and scheduler roles, the bucket, the ECR repositories and the schedule group; it costs nothing until data is stored. A second run changes nothing.

    Example: local-mlops cloud init --region eu-west-1 --profile work --yes
    """
    settings = _settings(ctx, region, profile)
    config = (ctx.find_root().obj or {}).get("config")
    result = account.init(settings, say, _asker(yes), config)
    if as_json:
        print_json(result.as_dict())
    if result.gaps:
        err.print(
            "[yellow]not applied by this endpoint's CloudFormation (an emulator; AWS applies "
            f"them):[/yellow] {_grouped(result.gaps)}",
            soft_wrap=True,
        )
    verb = {"created": "Created", "updated": "Updated", "unchanged": "Up to date:"}[result.action]
    say(f"{verb} the stack {result.stack.name} ({result.stack.status}).")
    if result.written:
        names = ", ".join(f"{k} = {v}" for k, v in result.written.items())
        say(f"Wrote {names} into {result.settings_file}.")
    else:
        say(f"{result.settings_file} already names the stack's resources.")
    say("Next: local-mlops doctor --cloud, then local-mlops run --cloud.")


def _status_tables(data: dict[str, Any]) -> None:
    stack = data["stack"]
    out.print(
        f"stack: {stack['name']} {stack['status']}"
        if stack
        else "stack: none (local-mlops cloud init)"
    )
    if data["gaps"]:
        out.print(f"[yellow]not in place:[/yellow] {_grouped(data['gaps'])}")
    table = Table(
        "kind", "name", "status", "instances", "USD/hour", title="the project's resources"
    )
    for item in data["resources"]:
        cost = "?" if item["hourly_usd"] is None else f"{item['hourly_usd']:.3f}"
        instances = (
            f"{item['instance_count']} × {item['instance_type']}" if item["instance_type"] else ""
        )
        table.add_row(item["kind"], item["name"], item["status"], instances, cost)
    out.print(table)
    stored = Table("where", "GB", "USD/month", title="stored")
    for place in data["storage"]:
        stored.add_row(place["where"], f"{place['bytes'] / 1e9:.3f}", f"{place['monthly_usd']:.2f}")
    out.print(stored)
    prices = data["prices"]
    out.print(
        f"now: {data['hourly_usd']:.3f} USD/hour; a month like this: {data['monthly_usd']:.2f} USD "
        f"(list prices of {prices['region']} from {prices['date']}: {prices['sources'][0]})"
    )
    if prices["fallback"]:
        out.print(
            f"[yellow]the price table has no {data['region']}: {prices['region']}'s figures shown[/yellow]"
        )


@app.command("status")
def status(
    ctx: typer.Context,
    region: str | None = region_option(),
    profile: str | None = profile_option(),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """What the project has in the account and what it costs now.

    Endpoints with their instance types and counts, running jobs and executions, schedules, stored GB, and an estimated hourly and monthly cost from the price table in the repo.

    Example: local-mlops cloud status --json
    """
    data = account.status(_settings(ctx, region, profile))
    if as_json:
        print_json(data)
        return
    _status_tables(data)


@app.command("down")
def down(
    ctx: typer.Context,
    keep_data: bool = typer.Option(
        False, "--keep-data", help="Keep the stack, the bucket, the images and the model registry."
    ),
    region: str | None = region_option(),
    profile: str | None = profile_option(),
    yes: bool = typer.Option(False, "--yes", "-y", help=YES_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Delete what the project created in the account (found by its tags); idempotent.

    Stops running executions and jobs, deletes schedules, endpoints, endpoint configs, models and pipelines, then, unless --keep-data, the model registry, the bucket's data, the images and the stack. Resources without the project's tag are never touched.

    Example: local-mlops cloud down --yes
    """
    settings = _settings(ctx, region, profile)
    session, plan = account.plan_down(settings, keep_data)
    lines = plan.lines()
    if not lines:
        say(f"Nothing of the project {settings.project} in {settings.region}: nothing to do.")
        if as_json:
            print_json({"done": [], "kept": [], "left": []})
        return
    for line in lines:
        err.print(f"  {line}")
    if not yes and not typer.confirm("Delete all of the above?", err=True):
        raise typer.Exit(1)
    result = account.down(session, settings, plan, say)
    if as_json:
        print_json(result)
    for line in result["done"]:
        say(line)
    for line in result["kept"]:
        say(f"kept {line}")
    if result["left"]:
        raise LocalMlopsError(
            "still in the account after teardown: " + "; ".join(result["left"]),
            "run local-mlops cloud down again; delete what stays in the console",
        )
    if keep_data:
        say("Kept the stack and its data: storage is billed per GB-month until `cloud down`.")
    else:
        say("Nothing of the project's is left in the account.")
