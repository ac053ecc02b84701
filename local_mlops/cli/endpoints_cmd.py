"""``local-mlops endpoints``: list, describe, delete and read the logs of endpoints."""

from __future__ import annotations

import typer
from rich.table import Table

from local_mlops.cli.common import JSON_HELP, err, out, print_json, say, settings_from

app = typer.Typer(
    help="Endpoints: live model versions behind the SageMaker Runtime API.\n\n"
    "Example: local-mlops endpoints list --json",
    no_args_is_help=True,
)
CLOUD_HELP = "SageMaker endpoints instead of the local ones."


def _weights(view: dict) -> str:
    parts = []
    for variant in view.get("variants", []):
        fleets = variant.get("fleets") or []
        inner = ", ".join(f"v{f['version']} {f['weight']:.0%}" for f in fleets if f["weight"])
        parts.append(
            f"{variant['name']} x{variant['instance_count']}" + (f" ({inner})" if inner else "")
        )
    return "; ".join(parts)


@app.command("list")
def list_endpoints(
    ctx: typer.Context,
    cloud: bool = typer.Option(False, "--cloud", help=CLOUD_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List endpoints: status, version, variants with instance counts and weights, URL.

    Example: local-mlops endpoints list --json
    """
    from local_mlops.targets import endpoints as service

    settings = settings_from(ctx, target="cloud" if cloud else None)
    views = service.list_endpoints(settings, say)
    if as_json:
        print_json(
            [
                {
                    k: v[k]
                    for k in (
                        "name",
                        "status",
                        "version",
                        "variants",
                        "url",
                        "runtime_endpoint_url",
                    )
                }
                for v in views
            ]
        )
        return
    table = Table("name", "status", "version", "variants", "url", title="endpoints")
    for view in views:
        table.add_row(
            view["name"], view["status"], str(view["version"]), _weights(view), view["url"]
        )
    if not views:
        table.add_row("(none)", "", "", "", "`local-mlops deploy` makes one")
    out.print(table)


@app.command("describe")
def describe(
    ctx: typer.Context,
    name: str = typer.Argument(None, help="Endpoint name (default: the configured one)."),
    cloud: bool = typer.Option(False, "--cloud", help=CLOUD_HELP),
    as_json: bool = typer.Option(True, "--json/--no-json", help=JSON_HELP),
) -> None:
    """Show one endpoint: its variants, fleets, containers, capture and last deployment.

    Example: local-mlops endpoints describe local-mlops-endpoint
    """
    from local_mlops.targets import endpoints as service

    settings = settings_from(ctx, target="cloud" if cloud else None)
    print_json(service.describe_endpoint(settings, name or settings.endpoint_name, say))


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: str = typer.Argument(None, help="Endpoint name (default: the configured one)."),
    cloud: bool = typer.Option(False, "--cloud", help=CLOUD_HELP),
) -> None:
    """Delete an endpoint (local: flushes captured data, removes its containers).

    With --cloud it removes the endpoint, its endpoint configs and its models.

    Example: local-mlops endpoints delete local-mlops-endpoint
    """
    from local_mlops.targets import endpoints as service

    settings = settings_from(ctx, target="cloud" if cloud else None)
    removed = service.delete_endpoint(settings, name or settings.endpoint_name, say)
    err.print(f"[green]✓[/green] deleted {', '.join(removed)}")


@app.command("logs")
def logs(
    ctx: typer.Context,
    name: str = typer.Argument(None, help="Endpoint name (default: the configured one)."),
    tail: int = typer.Option(50, "--tail", help="Lines per container."),
) -> None:
    """Print the last lines of each of a local endpoint's containers, and the router's.

    Example: local-mlops endpoints logs local-mlops-endpoint --tail 20
    """
    from local_mlops.devenv import dockerhost
    from local_mlops.serving import local
    from local_mlops.serving.fleet import DockerInstances
    from local_mlops.serving.state import EndpointStore

    settings = settings_from(ctx)
    endpoint = EndpointStore(settings.state_path).get(name or settings.endpoint_name)
    backend = DockerInstances(dockerhost.docker_client())
    for instance in endpoint.instances():
        out.print(f"[bold]== {instance.name} (127.0.0.1:{instance.port})[/bold]")
        out.print(backend.logs(instance, tail), markup=False)
    router_log = local.router_log(settings)
    if router_log.is_file():
        out.print(f"[bold]== router ({router_log})[/bold]")
        out.print("\n".join(router_log.read_text().splitlines()[-tail:]), markup=False)
