"""Before a run on SageMaker: the account checks, an estimated cost, and a confirmation."""

from __future__ import annotations

import typer
from rich.table import Table

from local_mlops.account import prices
from local_mlops.cli.common import err
from local_mlops.config import Settings
from local_mlops.devenv import dockerhost, doctor
from local_mlops.errors import LocalMlopsError
from local_mlops.pipeline import steps
from local_mlops.pipeline.runner import INSTANCE_COUNT, RunOptions

# Unknown instance types are priced high rather than free; the table is account/prices.toml.
UNKNOWN_PROCESSING_USD, UNKNOWN_TRAINING_USD = 0.5, 1.0
PROCESSING_MINUTES = 5  # per processing step, billed per second with a 1-minute minimum
TRAINING_MINUTES = 15  # per training job on the default dataset
TRANSFORM_MINUTES = 10  # the BatchScore step (`run --batch-input`): start, score, stop


def estimate_cost(
    settings: Settings, options: RunOptions
) -> tuple[float, list[tuple[str, str, float]]]:
    """(total USD, rows of what, instance type, USD) for the run's worst case."""
    table = prices.table(settings.region)
    processing = table.hourly("jobs", settings.processing_instance_type) or UNKNOWN_PROCESSING_USD
    training = table.hourly("jobs", settings.training_instance_type) or UNKNOWN_TRAINING_USD
    jobs = options.max_jobs if options.tune else 1
    hosts = int(options.parameters.get(INSTANCE_COUNT, 1))
    spot_factor = 0.3 if options.spot else 1.0
    count = len(steps.PROCESSING)
    rows = [
        (
            f"{count} processing steps",
            settings.processing_instance_type,
            count * PROCESSING_MINUTES / 60 * processing,
        ),
        (
            f"{jobs} training job(s)" + (f" x {hosts} instances" if hosts > 1 else ""),
            settings.training_instance_type,
            jobs * hosts * TRAINING_MINUTES / 60 * training * spot_factor,
        ),
    ]
    if options.batch_input:
        transform = table.hourly("jobs", settings.transform_instance_type)
        rows.append(
            (
                "1 batch transform job (BatchScore)",
                settings.transform_instance_type,
                TRANSFORM_MINUTES / 60 * (transform or UNKNOWN_PROCESSING_USD),
            )
        )
    return sum(r[2] for r in rows), rows


def confirm_cloud_run(settings: Settings, options: RunOptions, yes: bool) -> None:
    """The account checks and the local image (pushed to ECR by the run), then the cost."""
    failing = [c for c in doctor.check_cloud(settings) if c.status == doctor.FAIL]
    if failing:
        first = failing[0]
        raise LocalMlopsError(f"cloud preflight: {first.name}: {first.detail}", first.fix)
    if not dockerhost.image_exists(settings.image_uri):
        raise LocalMlopsError(
            f"cloud preflight: the runtime image {settings.image_uri} is not built "
            "(the run pushes it to ECR)",
            "local-mlops build",
        )
    total, rows = estimate_cost(settings, options)
    table = Table("what", "instance type", "estimated USD", title="estimated cost of this run")
    for what, kind, usd in rows:
        table.add_row(what, kind, f"{usd:.2f}")
    table.add_row("total", "", f"{total:.2f}")
    err.print(table)
    if not yes and not typer.confirm("Start this run on SageMaker (it costs money)?", err=True):
        raise typer.Exit(1)
