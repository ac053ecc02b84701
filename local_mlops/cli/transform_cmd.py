"""``local-mlops transform``: batch transform of a folder or an S3 prefix."""

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


def transform(
    ctx: typer.Context,
    input_path: str = typer.Option(
        ..., "--input", help="A folder of images, or s3://BUCKET/PREFIX/ (every object in it)."
    ),
    output_path: str = typer.Option(
        ..., "--output", help="A folder for the NAME.out files, or s3://BUCKET/PREFIX/."
    ),
    version: int = typer.Option(
        None, "--version", help="Model version (default: newest Approved)."
    ),
    top: int = typer.Option(3, "--top", help="Classes in each output's top_k."),
    cloud: bool = typer.Option(False, "--cloud", help="Run a SageMaker Batch Transform job."),
    region: str = region_option(),
    profile: str = profile_option(),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Score every image of a folder or S3 prefix with a registered model version.

    A SageMaker Batch Transform job (local mode's, or SageMaker's with --cloud) runs the
    version in the serving image and writes one NAME.out (JSON: the top classes) per input
    image NAME. A local input folder is uploaded to the bucket first; a local output folder
    gets the results. An image the model cannot read gets an .out with the error.

    Example: local-mlops transform --input ./photos --output ./scores --version 3
    """
    from local_mlops.targets import transform as service

    settings = settings_from(ctx, target="cloud" if cloud else None, region=region, profile=profile)
    progress = Progress(
        TextColumn("[cyan]›[/cyan] transform"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    task: list[Any] = []

    def started(total: int) -> None:
        task.append(progress.add_task("records", total=total))

    def record(done: int, total: int, key: str) -> None:
        if task:
            progress.update(task[0], completed=done)

    with progress:
        summary = service.transform(
            settings,
            say,
            input_path=input_path,
            output_path=output_path,
            version=version,
            top=top,
            on_start=started,
            on_record=record,
        )
    if as_json:
        print_json(summary.to_dict())
        return
    table = Table("images", "scored", "errors", "classes", "seconds", "images/s",
                  title=f"transform {summary.job_name} (version {summary.version})")  # fmt: skip
    classes = ", ".join(f"{label} {count}" for label, count in summary.classes.items())
    table.add_row(
        str(summary.images),
        str(summary.scored),
        str(len(summary.errors)),
        classes or "-",
        f"{summary.seconds:.1f}",
        f"{summary.images_per_second:.1f}",
    )
    out.print(table)
    for entry in summary.errors:
        err.print(f"[yellow]![/yellow] {entry.name}: {entry.error}")
    where = summary.output_folder or summary.output_uri
    err.print(f"[green]✓[/green] {summary.images} output(s) in {where}")
