"""``local-mlops traffic``: realistic (optionally drifted) requests to a local endpoint."""

from __future__ import annotations

from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from local_mlops.cli.common import JSON_HELP, err, out, print_json, say, settings_from
from local_mlops.config import Settings
from local_mlops.errors import LocalMlopsError
from local_mlops.monitoring import traffic as gen
from local_mlops.monitoring.shifts import SHIFTS

DRIFT_HELP = "Shift the images: " + ", ".join(f"{k} (default {v[0]:g})" for k, v in SHIFTS.items())


def test_split(settings: Settings, endpoint: str) -> tuple[Any, str, Any]:
    """(the S3 client, the split's key, the endpoint document) for a deployed local endpoint."""
    from local_mlops.s3 import s3_client
    from local_mlops.serving import daemon
    from local_mlops.serving.state import EndpointStore
    from local_mlops.targets.endpoints import persistent_s3

    EndpointStore(settings.state_path).get(endpoint)  # a missing endpoint is named first
    info = daemon.router_info(settings)
    if info is None or not info.running:
        raise LocalMlopsError(
            "the endpoint router is not running", "start it with `local-mlops up`"
        )
    client = s3_client(settings, persistent_s3(settings, say))
    key, document = gen.endpoint_split(settings, client, endpoint)
    return client, key, document


def traffic(
    ctx: typer.Context,
    endpoint: str = typer.Option(
        None, "--endpoint", help="Endpoint to send to (default: endpoint_name)."
    ),
    n: int = typer.Option(500, "--n", help=f"Requests to send (1..{gen.MAX_REQUESTS})."),
    rate: float = typer.Option(None, "--rate", help="At most this many requests a second."),
    drift: str = typer.Option(None, "--drift", help=DRIFT_HELP),
    strength: float = typer.Option(None, "--strength", help="Strength of the --drift shift."),
    concurrency: int = typer.Option(4, "--concurrency", help="Requests in flight at once."),
    max_seconds: float = typer.Option(300.0, "--max-seconds", help="Stop sending after this."),
    seed: int = typer.Option(None, "--seed", help="Draw the same requests every time."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Send realistic requests, drawn from the run's test split, through the local router.

    Each request is one PNG of the test split of the run that registered the endpoint's model
    version, drawn at random, shifted when --drift is given. Data capture records them as any
    client's; `monitor run` then compares them with the version's baseline.

    Example: local-mlops traffic --n 500 --drift brightness --strength 0.2
    """
    from local_mlops.serving import daemon
    from local_mlops.targets.endpoints import local_invocations_url

    settings = settings_from(ctx)
    name = endpoint or settings.endpoint_name
    url = local_invocations_url(settings, name)
    gen.check_request(n, rate, concurrency, max_seconds)
    value = gen.check_drift(drift, strength)
    client, key, document = test_split(settings, name)
    images, labels = gen.load_split(client, settings.bucket, key)
    bodies, _ = gen.draw(images, labels, n, drift, value, seed)
    what = f"{drift} {value:g}" if drift else "no drift"
    say(f"Sending {n} requests to {name} (version {document.version}, {what}) ...")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err, transient=as_json) as bar:
        task = bar.add_task(name, total=n)
        result = gen.send(
            url, name, bodies, rate, concurrency, max_seconds, lambda ok: bar.advance(task)
        )
    flushed = daemon.flush_router(settings)
    summary = {
        **result.summary(),
        "drift": drift,
        "strength": value,
        "version": document.version,
        "test_split": f"s3://{settings.bucket}/{key}",
        "captured_records_flushed": flushed,
    }
    if as_json:
        print_json(summary)
        return
    latency = (
        f"latency p50 {summary['latency_p50_ms']} ms, p99 {summary['latency_p99_ms']} ms"
        if result.latencies
        else "no answers"
    )
    colour = "green" if result.errors == 0 else "yellow"
    out.print(
        f"[{colour}]sent {result.sent}, ok {result.ok}, errors {result.errors}[/{colour}] "
        f"in {result.seconds:.1f} s; {latency}"
    )
    if result.stopped_by_time:
        out.print(f"[yellow]stopped after --max-seconds {max_seconds:g}[/yellow]")
    for sample in result.error_samples[:3]:
        err.print(f"[red]error:[/red] {sample}")
