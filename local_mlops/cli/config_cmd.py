"""``local-mlops config``: the effective settings and where each came from."""

from __future__ import annotations

import typer
from rich.table import Table

from local_mlops.cli.common import JSON_HELP, out, print_json, settings_from

app = typer.Typer(
    help="Inspect settings.\n\nExample: local-mlops config show", no_args_is_help=True
)


@app.command("show")
def show(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Print each setting, its value and its source (flag, env, file or default).

    Example: LOCAL_MLOPS_EPOCHS=3 local-mlops config show
    """
    settings = settings_from(ctx)
    items = settings.public_items()
    if as_json:
        print_json({name: {"value": value, "source": source} for name, value, source in items})
        return
    table = Table("setting", "value", "source", title="local-mlops settings")
    for name, value, source in items:
        table.add_row(name, str(value), source)
    table.add_row("image_uri (derived)", settings.image_uri, "image_repository:image_tag")
    out.print(table)
