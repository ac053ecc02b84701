"""``local-mlops models``: the model registry (local, or SageMaker's with --cloud)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from local_mlops.cli.common import (
    JSON_HELP,
    out,
    print_json,
    profile_option,
    region_option,
    settings_from,
)
from local_mlops.cli.stores import opened_target

app = typer.Typer(
    help="The model registry.\n\nExample: local-mlops models list", no_args_is_help=True
)
TARGET_HELP = "Look at SageMaker Model Registry instead of the local one."


def _accuracy(package: dict[str, Any]) -> str:
    metrics = package.get("Metrics") or {}
    for key in ("accuracy", "multiclass_classification_metrics.accuracy.value"):
        if key in metrics:
            return f"{float(metrics[key]):.4f}"
    return ""


@app.command("list")
def list_models(
    ctx: typer.Context,
    group: str = typer.Option(
        None, "--group", help="Model package group (default: the configured one)."
    ),
    cloud: bool = typer.Option(False, "--cloud", help=TARGET_HELP),
    region: str | None = region_option(),
    profile: str | None = profile_option(),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List model versions with approval status, accuracy and the run that made each.

    Example: local-mlops models list --json
    """
    settings = settings_from(ctx, target="cloud" if cloud else None, region=region, profile=profile)
    with opened_target(settings) as target:
        packages = target.models.list_packages(group or settings.model_package_group)
    if as_json:
        print_json(packages)
        return
    table = Table(
        "group", "version", "status", "accuracy", "created", "run", "model data", title="models"
    )
    for package in packages:
        containers = package.get("InferenceSpecification", {}).get("Containers", [{}])
        table.add_row(
            package.get("ModelPackageGroupName", ""),
            str(package.get("ModelPackageVersion", "")),
            package.get("ModelApprovalStatus", ""),
            _accuracy(package),
            str(package.get("CreationTime", "")),
            str(package.get("PipelineExecutionArn") or "").rsplit("/", 1)[-1],
            containers[0].get("ModelDataUrl", ""),
        )
    out.print(table)


@app.command("describe")
def describe(
    ctx: typer.Context,
    package: str = typer.Argument(
        ..., help="VERSION (in the configured group), GROUP/VERSION or a model package ARN."
    ),
    cloud: bool = typer.Option(False, "--cloud", help=TARGET_HELP),
    region: str | None = region_option(),
    profile: str | None = profile_option(),
    as_json: bool = typer.Option(True, "--json/--no-json", help=JSON_HELP),
) -> None:
    """Show one model version in DescribeModelPackage's shape.

    Example: local-mlops models describe 1
    """
    settings = settings_from(ctx, target="cloud" if cloud else None, region=region, profile=profile)
    if package.isdigit():  # a version of the configured group, as `models approve` takes it
        package = f"{settings.model_package_group}/{package}"
    with opened_target(settings) as target:
        print_json(target.models.describe(package))


@app.command("approve")
def approve(
    ctx: typer.Context,
    version: int = typer.Argument(..., help="Model version in the configured group."),
    reason: str = typer.Option(None, "--reason", help="Why (kept in the approval history)."),
    deploy: bool = typer.Option(
        True, "--deploy/--no-deploy", help="Deploy the approved version at once (default)."
    ),
    endpoint: str = typer.Option(
        None, "--endpoint", help="Endpoint name (default: endpoint_name)."
    ),
    cloud: bool = typer.Option(False, "--cloud", help=TARGET_HELP),
) -> None:
    """Approve a model version, then deploy it (locally, or to SageMaker with --cloud).

    Example: local-mlops models approve 3 --reason "beats v2 on the test split"
    """
    from local_mlops.cli.common import err, say
    from local_mlops.targets import endpoints as service

    settings = settings_from(ctx, target="cloud" if cloud else None)
    package = service.approve(settings, version, "Approved", reason, say)
    err.print(f"[green]✓[/green] {package['ModelPackageGroupName']} v{version} approved")
    if deploy:
        view = service.deploy(settings, say, version=version, endpoint=endpoint)
        err.print(
            f"[green]✓[/green] endpoint {view['name']} serves version {view['version']} at {view['url']}"
        )


@app.command("reject")
def reject(
    ctx: typer.Context,
    version: int = typer.Argument(..., help="Model version in the configured group."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the approval history)."),
    cloud: bool = typer.Option(False, "--cloud", help=TARGET_HELP),
) -> None:
    """Reject a model version; it can no longer be deployed until approved again.

    Example: local-mlops models reject 4 --reason "fails on rotated digits"
    """
    from local_mlops.cli.common import err, say
    from local_mlops.targets import endpoints as service

    settings = settings_from(ctx, target="cloud" if cloud else None)
    package = service.approve(settings, version, "Rejected", reason, say)
    err.print(f"[green]✓[/green] {package['ModelPackageGroupName']} v{version} rejected: {reason}")
