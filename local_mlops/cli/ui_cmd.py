"""``local-mlops ui``: the local web dashboard."""

from __future__ import annotations

import typer

from local_mlops.cli.common import err, settings_from
from local_mlops.cli.stores import opened_target


def ui(
    ctx: typer.Context,
    port: int = typer.Option(8765, "--port", help="Port on 127.0.0.1 (0: any free port)."),
) -> None:
    """Serve the dashboard on 127.0.0.1: runs, the registry (approve deploys), endpoints and
    their traffic, monitoring reports, captures to label. Ctrl-C stops it.

    It reads the same bucket documents, endpoint documents and router as the CLI and opens
    nothing by itself: open the URL it prints.

    Example: local-mlops ui --port 8765
    """
    from local_mlops.ui.data import Dashboard
    from local_mlops.ui.server import DashboardServer

    settings = settings_from(ctx)
    with opened_target(settings) as target:
        server = DashboardServer(Dashboard(settings, target), port)
        err.print(f"Dashboard: [bold]{server.url}[/bold]  (Ctrl-C stops it)")
        server.run()
