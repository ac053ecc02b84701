"""The root ``local-mlops`` command and its error handling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from local_mlops import __version__
from local_mlops.cli import (
    cloud_cmd,
    config_cmd,
    data_cmd,
    deploy_cmd,
    endpoints_cmd,
    env,
    label_cmd,
    models_cmd,
    monitor_cmd,
    pipeline_cmd,
    run_cmd,
    runs_cmd,
    traffic_cmd,
    transform_cmd,
    ui_cmd,
)
from local_mlops.cli.common import err
from local_mlops.errors import LocalMlopsError


class ErrorHandlingGroup(TyperGroup):
    """Turns a LocalMlopsError anywhere below into one red line and exit code 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LocalMlopsError as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            err.print(f"[bold red]error:[/bold red] {exc.message}", markup=True, soft_wrap=True)
            if exc.fix:
                err.print(f"[red]fix:[/red] {exc.fix}", soft_wrap=True)
            ctx.exit(1)


app = typer.Typer(
    cls=ErrorHandlingGroup,
    help=(
        "Run a SageMaker image-classification pipeline locally in Docker, "
        "or on SageMaker with one flag.\n\n"
        "Example: local-mlops doctor"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"local-mlops {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    config: Path | None = typer.Option(
        None, "--config", help="A local-mlops.toml to read (default: the nearest one)."
    ),
) -> None:
    ctx.obj = {"debug": debug, "config": config}


env.register(app)
app.add_typer(config_cmd.app, name="config")
app.command("run")(run_cmd.run)
app.add_typer(pipeline_cmd.app, name="pipeline")
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(models_cmd.app, name="models")
app.add_typer(monitor_cmd.app, name="monitor")
app.add_typer(data_cmd.app, name="data")
app.command("label")(label_cmd.label)
app.command("deploy")(deploy_cmd.deploy)
app.command("predict")(deploy_cmd.predict)
app.command("traffic")(traffic_cmd.traffic)
app.command("transform")(transform_cmd.transform)
app.add_typer(endpoints_cmd.app, name="endpoints")
app.command("ui")(ui_cmd.ui)
app.add_typer(cloud_cmd.app, name="cloud")


def main() -> None:
    app()
