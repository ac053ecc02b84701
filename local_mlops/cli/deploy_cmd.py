"""``local-mlops deploy`` and ``local-mlops predict``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from local_mlops.cli.common import JSON_HELP, err, out, print_json, say, settings_from
from local_mlops.errors import LocalMlopsError


def deploy(
    ctx: typer.Context,
    version: int = typer.Option(
        None, "--version", help="Model version (default: newest Approved)."
    ),
    endpoint: str = typer.Option(
        None, "--endpoint", help="Endpoint name (default: endpoint_name)."
    ),
    instance_count: int = typer.Option(None, "--instance-count", help="Instances (containers)."),
    traffic: str = typer.Option(None, "--traffic", help="Update: all-at-once, canary or linear."),
    step_percent: int = typer.Option(None, "--step-percent", help="Update: canary/linear step, %."),
    bake: float = typer.Option(None, "--bake", help="Update: seconds to watch each step."),
    max_error_rate: float = typer.Option(
        None, "--max-error-rate", help="Update: roll back above this 5xx share (0..1)."
    ),
    no_capture: bool = typer.Option(False, "--no-capture", help="Turn data capture off."),
    cloud: bool = typer.Option(False, "--cloud", help="Deploy to a SageMaker endpoint."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Deploy a registered model version: create the endpoint, or update it blue/green.

    An update starts the new fleet, waits for /ping, shifts traffic (all at once, canary or
    linear, baking each step) and rolls back by itself on errors or a failed health check.

    Example: local-mlops deploy --version 3 --traffic canary --step-percent 20 --bake 30
    """
    from local_mlops.serving.policy import DeploymentPolicy
    from local_mlops.targets import endpoints as service

    settings = settings_from(
        ctx, target="cloud" if cloud else None, data_capture=False if no_capture else None
    )
    policy = DeploymentPolicy.from_settings(
        settings,
        traffic=traffic,
        step_percent=step_percent,
        bake_seconds=bake,
        max_error_rate=max_error_rate,
    )
    view = service.deploy(
        settings,
        say,
        version=version,
        endpoint=endpoint,
        instance_count=instance_count,
        policy=policy,
    )
    if as_json:
        print_json(view)
        return
    err.print(
        f"[green]✓[/green] endpoint {view['name']} serves version {view['version']} "
        f"({view['status']}) at {view['url']}"
    )


def predict(
    ctx: typer.Context,
    images: list[Path] = typer.Argument(..., help="PNG or JPEG files."),
    endpoint: str = typer.Option(
        None, "--endpoint", help="Endpoint name (default: endpoint_name)."
    ),
    top: int = typer.Option(3, "--top", help="Classes to show per image."),
    cloud: bool = typer.Option(False, "--cloud", help="Call a SageMaker endpoint."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Classify images through the endpoint's SageMaker Runtime API; print the top classes.

    Example: local-mlops predict digit.png --top 3
    """
    from local_mlops.targets import endpoints as service

    settings = settings_from(ctx, target="cloud" if cloud else None)
    results = service.predict(settings, endpoint or settings.endpoint_name, images, top)
    if as_json:
        print_json(results)
    else:
        table = Table(
            "image",
            "label",
            "top classes",
            title=f"predictions ({endpoint or settings.endpoint_name})",
        )
        for result in results:
            if "error" in result:
                table.add_row(
                    Path(result["file"]).name,
                    "-",
                    f"[red]{result['status']}: {result['error']}[/red]",
                )
                continue
            ranked = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in result["top"])
            table.add_row(Path(result["file"]).name, str(result["label"]), ranked)
        out.print(table)
    failed = [Path(r["file"]).name for r in results if "error" in r]
    if failed:
        raise LocalMlopsError(
            f"{len(failed)} of {len(results)} image(s) could not be classified: {', '.join(failed)}",
            "send PNG or JPEG files the model can read (the table says why for each)",
        )
