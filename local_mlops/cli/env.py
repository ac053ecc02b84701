"""Dev environment commands: ``up``, ``down``, ``status``, ``doctor``, ``build``."""

from __future__ import annotations

from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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
from local_mlops.config import Settings
from local_mlops.devenv import compose, dockerhost, doctor, emulator, image, orphans, processes

STATUS_STYLE = {doctor.OK: "green", doctor.WARN: "yellow", doctor.FAIL: "red"}


def up(ctx: typer.Context) -> None:
    """Start the dev environment (the S3 emulator), the endpoint router and every endpoint.

    Example: local-mlops up
    """
    from local_mlops.monitoring import schedule as monitoring_schedule
    from local_mlops.serving import local

    settings = settings_from(ctx)
    with err.status("Starting the dev environment ..."):
        url = compose.up(settings, say)
        endpoints = local.up(settings, url, dockerhost.docker_client(), say)
        scheduled = monitoring_schedule.resume(settings)
    err.print(f"[green]✓[/green] S3 emulator at {url}, bucket s3://{settings.bucket}")
    if scheduled:
        err.print(f"[green]✓[/green] monitoring scheduler back: {scheduled} schedule(s)")
    if endpoints:
        err.print(
            f"[green]✓[/green] router at {local.runtime_url(settings)}; "
            f"endpoints back: {', '.join(endpoints)}"
        )


def down(ctx: typer.Context) -> None:
    """Stop endpoints, router and emulator; the bucket and endpoints come back with `up`.

    Example: local-mlops down
    """
    from local_mlops.monitoring import schedule as monitoring_schedule
    from local_mlops.serving import local

    settings = settings_from(ctx)
    with err.status("Stopping the dev environment ..."):
        # The schedules stay in the state dir; `up` starts their scheduler again.
        monitoring_schedule.stop_scheduler(settings)
        # The router flushes captured data to the bucket before the bucket is snapshotted.
        if dockerhost.docker_available():
            stopped = local.down(settings, dockerhost.docker_client())
            if stopped:
                say(f"Stopped {stopped} endpoint container(s) and the router.")
        compose.down(settings, say)
    err.print("[green]✓[/green] dev environment stopped")


def status(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)
) -> None:
    """Show what runs and where: emulator, image, runs and their job containers.

    What a killed command left (runs still saying Executing, containers, temp folders) is
    reconciled first. Example: local-mlops status --json
    """
    settings = settings_from(ctx)
    services = compose.status(settings)
    docker_up = dockerhost.docker_available()
    image_ok = docker_up and dockerhost.image_exists(settings.image_uri)
    running = _running(settings)
    from local_mlops.serving import local

    serving = local.status(settings)
    data = {
        "docker": docker_up,
        "image": {"uri": settings.image_uri, "present": image_ok},
        "services": [s.__dict__ for s in services],
        "bucket": f"s3://{settings.bucket}",
        **running,
        **serving,
    }
    if as_json:
        print_json(data)
        return
    table = Table("service", "state", "address", title="local-mlops status")
    for service in services:
        table.add_row(service.name, service.state, service.address)
    if not services:
        table.add_row("s3-emulator", "not running", "(`local-mlops up`; else embedded per command)")
    table.add_row("runtime image", "present" if image_ok else "missing", settings.image_uri)
    table.add_row("docker", "running" if docker_up else "not reachable", "")
    for run in running["runs"]:
        table.add_row(f"run {run['execution']}", run["status"], f"pid {run['pid']}")
    for container in running["containers"]:
        table.add_row(f"container {container['name']}", container["state"], container["owner"])
    router = serving["router"]
    table.add_row("endpoint router", router["state"], router["address"])
    for endpoint in serving["endpoints"]:
        table.add_row(f"endpoint {endpoint['name']}", endpoint["status"], endpoint["url"])
    out.print(table)


def _running(settings: Settings) -> dict[str, Any]:
    """The project's runs in progress and its containers, after reconciling what was left."""
    from local_mlops.s3 import s3_client
    from local_mlops.stores.runstore import RunStore

    project = processes.project_of(settings)
    url = emulator.running_endpoint(settings)
    runstore = RunStore(s3_client(settings, url), settings.bucket) if url else None
    for line in orphans.reconcile(project, runstore).messages():
        say(line)
    runs = []
    for execution_id in runstore.running_ids() if runstore else []:
        record = runstore.get(execution_id) if runstore else {}
        owner = record.get("Owner") or {}
        runs.append(
            {"execution": execution_id, "status": record.get("Status"), "pid": owner.get("Pid")}
        )
    containers = [
        {
            "name": c.name,
            "state": c.state,
            "execution": c.execution,
            "owner": f"pid {c.owner.pid}" if c.owner else "",
        }
        for c in orphans.project_containers(project)
    ]
    return {"runs": runs, "containers": containers}


def doctor_cmd(
    ctx: typer.Context,
    cloud: bool = typer.Option(False, "--cloud", help="Also check the AWS account side."),
    region: str | None = region_option(),
    profile: str | None = profile_option(),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Check the prerequisites and print the fix for each failing one.

    Example: local-mlops doctor --json
    """
    settings = settings_from(ctx, target="cloud" if cloud else None, region=region, profile=profile)
    checks = doctor.run_checks(settings)
    result = doctor.summary(checks)
    if as_json:
        print_json(result)
    else:
        table = Table("check", "status", "detail", "fix", title="local-mlops doctor")
        for check in checks:
            style = STATUS_STYLE[check.status]
            table.add_row(check.name, f"[{style}]{check.status}[/{style}]", check.detail, check.fix)
        out.print(table)
    if not result["ok"]:
        raise typer.Exit(1)


def build(
    ctx: typer.Context,
    push: bool = typer.Option(
        False,
        "--push",
        help="Then push them to ECR for --cloud runs (image_repository / "
        "serving_image_repository, else ACCOUNT's ECR repositories named image_name / "
        "serving_image_name, created when missing).",
    ),
    region: str | None = region_option(),
    profile: str | None = profile_option(),
) -> None:
    """Build the runtime image (processing, training) and the serving image (endpoints: ONNX
    Runtime, no torch), offline when no registry answers, reusing the layer cache.

    Example: local-mlops build --push
    """
    from local_mlops.targets import cloud

    settings = settings_from(ctx, region=region, profile=profile)
    for spec in (image.runtime_spec(settings), image.serving_spec(settings)):
        _build_one(settings, spec)
    if not push:
        return
    for serving in (False, True):
        pushed = _push_one(settings, cloud, serving)
        verb = "already in the registry" if pushed.skipped else f"pushed in {pushed.seconds:.0f} s"
        err.print(f"[green]✓[/green] {pushed.uri} {verb} ({pushed.digest})")


def _build_one(settings: Settings, spec: image.ImageSpec) -> None:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task(f"building {spec.tag}", total=None)

        def on_line(line: str, step: int, total: int) -> None:
            if total:
                progress.update(task, completed=step, total=total)
            if line.startswith("Step ") or "Successfully" in line:
                progress.console.print(line[:160], style="dim", markup=False)

        def tell(message: str) -> None:
            progress.console.print(f"[cyan]›[/cyan] {message}")

        result = image.build(settings, spec, tell, on_line)
    err.print(
        f"[green]✓[/green] built {result.tag} ({result.mode}) in {result.seconds:.0f} s, "
        f"{result.size_bytes / 1e9:.2f} GB"
    )


def _push_one(settings: Settings, cloud: Any, serving: bool) -> image.PushResult:
    from rich.progress import DownloadColumn, TransferSpeedColumn

    local = settings.serving_image_uri if serving else settings.image_uri
    push_columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(
        *push_columns, TransferSpeedColumn(), TimeElapsedColumn(), console=err, transient=True
    ) as progress:
        task = progress.add_task(f"pushing {local}", total=None)
        layers: dict[str, tuple[int, int]] = {}

        def on_progress(layer: str, status: str, current: int, total: int) -> None:
            done, size = layers.get(layer, (0, 0))
            if status == "Pushing" and total:
                done, size = current, total
            elif status in ("Pushed", "Layer already exists") or status.startswith("Mounted"):
                done = size
                progress.console.print(f"layer {layer}: {status}", style="dim", markup=False)
            layers[layer] = (done, size)
            total_bytes = sum(size for _, size in layers.values())
            progress.update(
                task,
                completed=sum(done for done, _ in layers.values()),
                total=total_bytes or None,
            )

        def tell_push(message: str) -> None:
            progress.console.print(f"[cyan]›[/cyan] {message}")

        result: image.PushResult = cloud.push_runtime_image(
            settings, tell_push, on_progress, serving=serving
        )
        return result


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command("doctor")(doctor_cmd)
    app.command()(build)
