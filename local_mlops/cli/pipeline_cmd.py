"""``local-mlops pipeline``: the definition JSON for either target."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from local_mlops.cli.common import err, profile_option, region_option, settings_from

app = typer.Typer(
    help="The pipeline definition.\n\nExample: local-mlops pipeline show", no_args_is_help=True
)


def _definition(
    ctx: typer.Context, local: bool, tune: bool, region: str | None, profile: str | None
) -> str:
    from local_mlops import targets
    from local_mlops.pipeline import graph

    settings = settings_from(
        ctx, target="local" if local else "cloud", region=region, profile=profile
    )
    pipeline = graph.build_pipeline(settings, targets.definition_session(settings), tune=tune)
    return json.dumps(json.loads(pipeline.definition()), indent=2)


@app.command("show")
def show(
    ctx: typer.Context,
    local: bool = typer.Option(True, "--local/--cloud", help="Which target's definition."),
    tune: bool = typer.Option(False, "--tune", help="With the tuning step instead of training."),
    region: str | None = region_option(),
    profile: str | None = profile_option(),
) -> None:
    """Print the definition JSON (needs neither Docker nor AWS).

    Example: local-mlops pipeline show --cloud --tune
    """
    typer.echo(_definition(ctx, local, tune, region, profile))


@app.command("export")
def export(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="File to write."),
    local: bool = typer.Option(True, "--local/--cloud", help="Which target's definition."),
    tune: bool = typer.Option(False, "--tune", help="With the tuning step instead of training."),
    region: str | None = region_option(),
    profile: str | None = profile_option(),
) -> None:
    """Write the definition JSON to a file.

    Example: local-mlops pipeline export pipeline.json --cloud
    """
    path.write_text(_definition(ctx, local, tune, region, profile) + "\n")
    err.print(f"wrote {path}")
