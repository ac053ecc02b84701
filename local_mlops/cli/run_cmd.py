"""``local-mlops run``: the pipeline graph on the local or cloud target, with a live step view."""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.live import Live
from rich.table import Table

from local_mlops.cli.common import (
    JSON_HELP,
    err,
    print_json,
    profile_option,
    region_option,
    say,
    settings_from,
)
from local_mlops.errors import LocalMlopsError

if TYPE_CHECKING:
    from local_mlops.pipeline import runner

STYLE = {
    "Succeeded": "green",
    "Failed": "red",
    "Stopped": "red",
    "Executing": "yellow",
    "Retrying": "yellow",
    "Waiting": "magenta",
}


class StepBoard:
    """Rows per step, fed by step events from the executor, drawn by rich.Live."""

    def __init__(self, names: list[str]) -> None:
        self.rows: dict[str, dict[str, Any]] = {n: {"status": "Pending"} for n in names}
        self.lock = threading.Lock()

    def event(self, execution_id: str, step: str, status: str, record: dict[str, Any]) -> None:
        with self.lock:
            row = self.rows.setdefault(step, {"status": "Pending"})
            if status == "Executing" and "started" not in row:
                row["started"] = time.monotonic()
            if status in ("Succeeded", "Failed", "Stopped"):
                row["ended"] = time.monotonic()
            row["status"] = status
            row["cached"] = bool(record.get("CacheHitResult"))
            row["detail"] = record.get("Waiting") or "" if status == "Waiting" else ""

    def __rich__(self) -> Table:
        table = Table("step", "status", "elapsed", title="pipeline", expand=False)
        now = time.monotonic()
        with self.lock:
            for name, row in self.rows.items():
                status = row.get("detail") or row["status"]
                status += " (cached)" if row.get("cached") else ""
                style = STYLE.get(row["status"], "dim")
                elapsed = ""
                if "started" in row:
                    elapsed = f"{row.get('ended', now) - row['started']:.1f} s"
                table.add_row(name, f"[{style}]{status}[/{style}]", elapsed)
        return table


@contextlib.contextmanager
def live_board(board: StepBoard) -> Iterator[None]:
    """Draw the board live; whatever is printed next (an error too) starts on a line of its own.

    rich ends a live display with a newline on a terminal but not on a file or pipe, where the
    next line would otherwise continue the table's bottom border.
    """
    live = Live(board, console=err, refresh_per_second=4, transient=False, redirect_stdout=False)
    try:
        with live:
            yield
    finally:
        if not err.is_terminal:
            err.line()


def _summary(result: runner.RunResult) -> Table:
    table = Table(
        show_header=False, title=f"run {result.status}", title_style=STYLE.get(result.status, "")
    )
    table.add_row("execution", result.execution_arn)
    table.add_row("wall time", f"{result.seconds:.1f} s")
    table.add_row("training instances", str(result.instance_count))
    for name in ("accuracy", "macro_f1", "weighted_f1"):
        if name in result.metrics:
            table.add_row(name, f"{result.metrics[name]:.4f}")
    if result.tuning:
        best = result.tuning["BestTrainingJob"]
        table.add_row(
            "best trial",
            f"{best['TrainingJobName']} (val_accuracy {best['Objective']:.4f}, "
            f"{len(result.tuning['Trials'])} trials)",
        )
    if result.model_package:
        package = result.model_package
        table.add_row(
            "registered",
            f"{package['ModelPackageGroupName']} v{package['ModelPackageVersion']} "
            f"({package['ModelApprovalStatus']})",
        )
        table.add_row(
            "model data", package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
        )
    if result.evaluation_uri and result.metrics:
        table.add_row("evaluation", result.evaluation_uri)
    if result.batch_output:
        table.add_row(
            "batch output", f"{result.batch_output} ({result.batch_outputs} .out objects)"
        )
    table.add_row("follow up", result.console_url)
    return table


def _print_failure(result: runner.RunResult) -> None:
    for step in result.steps:
        if step.get("StepStatus") == "Failed":
            err.print(
                f"[bold red]step {step['StepName']} failed:[/bold red] {step.get('FailureReason', '')}",
                soft_wrap=True,
            )
            tail = step.get("LogTail") or []
            if tail:
                err.print("[dim]--- last lines of its container log ---[/dim]")
                err.print(
                    "\n".join(tail if isinstance(tail, list) else str(tail).splitlines()),
                    markup=False,
                    style="dim",
                )


def _report_stopped(stop: KeyboardInterrupt) -> NoReturn:
    """Ctrl-C or SIGTERM: one line saying what happened, exit 128 + the signal number."""
    name = getattr(stop, "signal_name", "SIGINT")
    execution = getattr(stop, "execution_id", None)
    where = (
        f"; its containers are removed and its record says Stopped "
        f"(`local-mlops runs describe {execution}`)"
        if execution
        else ""
    )
    err.print(f"\n[bold red]stopped:[/bold red] the run was stopped by {name}{where}")
    raise typer.Exit(128 + int(getattr(signal, name, signal.SIGINT)))


def run(
    ctx: typer.Context,
    local: bool = typer.Option(
        True, "--local/--cloud", help="Run in Docker locally (default) or on SageMaker."
    ),
    dataset: str = typer.Option(
        None, "--dataset", help="digits (default, embedded), cifar10 or imagefolder."
    ),
    data: str = typer.Option(None, "--data", help="A local path or s3:// URI of the dataset."),
    tune: bool = typer.Option(
        False, "--tune", help="Hyperparameter tuning instead of one training job."
    ),
    max_jobs: int = typer.Option(4, "--max-jobs", help="Tuning: training jobs in all."),
    max_parallel_jobs: int = typer.Option(2, "--max-parallel-jobs", help="Tuning: jobs at once."),
    strategy: str = typer.Option("Bayesian", "--strategy", help="Tuning: Bayesian or Random."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Re-run every step."),
    instance_count: int = typer.Option(
        1,
        "--instance-count",
        help="Training instances (1 to 8; torch.distributed across them; tuning trials too).",
    ),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs."),
    backbone: str = typer.Option(None, "--backbone", help="resnet18 or mobilenet_v3_small."),
    learning_rate: float = typer.Option(
        None, "--learning-rate", help="Training learning rate (e.g. 0.001)."
    ),
    weights: str = typer.Option(
        None, "--weights", help="none, imagenet, or a state-dict path or s3:// URI."
    ),
    threshold: float = typer.Option(
        None, "--threshold", help="Accuracy needed to register the model (0 to 1)."
    ),
    skip_bad_images: bool = typer.Option(
        False, "--skip-bad-images", help="Import: skip unreadable images and list them."
    ),
    batch_input: str = typer.Option(
        "",
        "--batch-input",
        help="A folder or s3:// prefix of images the new model scores (the BatchScore step).",
    ),
    spot: bool = typer.Option(
        False, "--spot", help="Cloud: managed spot training with checkpoints."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Cloud: do not ask for confirmation."),
    region: str | None = region_option(),
    profile: str | None = profile_option(),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Run the pipeline: validate, preprocess, train or tune, evaluate, gate, register.

    Locally (auto_approve) the new version is then approved and deployed, and first_report sends
    a few dozen requests to it and runs one monitoring job: the dashboard has a report to show.

    With --batch-input the graph ends with a batch transform of those images by the created
    model: one NAME.out (JSON, the top classes) per image, under the run's batch/ prefix.

    Example: local-mlops run --local --epochs 5 --instance-count 2
    """
    from local_mlops.pipeline import hyperparameters, runner, steps
    from local_mlops.targets import kind_of

    settings = settings_from(
        ctx,
        target="local" if local else "cloud",
        region=region,
        profile=profile,
        dataset=dataset,
        data=data,
        epochs=epochs,
        backbone=backbone,
        learning_rate=learning_rate,
        weights=weights,
        accuracy_threshold=threshold,
    )
    options = runner.RunOptions(
        tune=tune,
        cache=not no_cache,
        data=data,
        max_jobs=max_jobs,
        max_parallel_jobs=max_parallel_jobs,
        strategy=strategy,
        spot=spot,
        skip_bad_images=skip_bad_images,
        batch_input=batch_input,
        parameters={
            "Epochs": settings.epochs,
            "Backbone": settings.backbone,
            "LearningRate": settings.learning_rate,
            "AccuracyThreshold": settings.accuracy_threshold,
            "TrainingInstanceCount": instance_count,
        },
    )
    # Bad values fail here, before the emulator, the import or any container starts.
    hyperparameters.check_instance_count(instance_count)
    hyperparameters.check_run(settings, options.parameters)
    if kind_of(settings).costs_money:
        from local_mlops.cli.cloud_preflight import confirm_cloud_run

        confirm_cloud_run(settings, options, yes)
    names = [
        steps.VALIDATE,
        steps.PREPROCESS,
        steps.TUNE if tune else steps.TRAIN,
        steps.EVALUATE,
        steps.CHECK,
    ]
    board = StepBoard(names)
    # Job containers' output (streamed by the SDK to stdout) goes to a log file, so stdout stays
    # machine-readable and the live table stays readable; failing steps show their log tail.
    log_path = settings.state_path / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log_path.open("w") as log, contextlib.redirect_stdout(log), live_board(board):
            result = runner.run(
                settings,
                options,
                say=lambda m: err.print(f"[cyan]›[/cyan] {m}"),
                on_step_event=board.event,
            )
    except KeyboardInterrupt as stop:
        _report_stopped(stop)
    err.print(f"[dim]container logs: {log_path}[/dim]")
    if not as_json:
        err.print(_summary(result))
    if not result.succeeded:
        if as_json:
            print_json(result.as_dict())
        _print_failure(result)
        raise LocalMlopsError(
            f"the pipeline {result.status.lower()}: {result.failure_reason or 'see the steps above'}",
            f"inspect it with `local-mlops runs describe {result.execution_arn.rsplit('/', 1)[-1]}`",
        )
    # What happens after the run joins its --json document, which is printed even when a later
    # part fails (the error then follows on stderr, exit 1).
    after: dict[str, Any] = {}
    try:
        package = result.model_package
        if settings.auto_approve and package and package.get("ModelApprovalStatus") != "Approved":
            deployed_at = dt.datetime.now(dt.UTC)
            after["deployment"] = _approve_and_deploy(settings, package)
            if settings.first_report:
                endpoint = after["deployment"]["endpoint"]
                after["first_report"] = _first_report(settings, endpoint, deployed_at)
    finally:
        if as_json:
            print_json(result.as_dict() | after)
    say("done")


def _approve_and_deploy(settings: Any, package: dict[str, Any]) -> dict[str, Any]:
    """auto_approve (on for the local target): approve, deploy, show one prediction."""
    from local_mlops.targets import endpoints as service

    say(f"auto_approve: approving and deploying version {package['ModelPackageVersion']} ...")
    view, sample = service.approve_and_deploy(settings, package, say)
    err.print(
        f"[green]✓[/green] endpoint {view['name']} serves version {view['version']} at {view['url']}"
    )
    if sample:
        ranked = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in sample["top"])
        err.print(
            f"[green]✓[/green] sample prediction for {sample['file'].rsplit('/', 1)[-1]} "
            f"(labelled {sample['true_label']}): {sample['label']} ({ranked})"
        )
    return {"endpoint": view, "sample_prediction": sample}


def _first_report(
    settings: Any, endpoint: dict[str, Any], since: dt.datetime
) -> dict[str, Any] | None:
    """first_report: a burst of clean traffic and one monitoring job (local endpoints only),
    over what the endpoint captured ``since`` this run deployed it."""
    from local_mlops.monitoring.first_report import first_report, one_line
    from local_mlops.targets import kind_of
    from local_mlops.targets.endpoints import opened

    if not kind_of(settings).local_router:
        say("first_report: skipped (it sends its requests through the local router)")
        return None
    if not settings.data_capture:
        say("first_report: skipped (data_capture is off: nothing would be captured to monitor)")
        return None
    with opened(settings, say, persistent=True) as (target, _):
        result = first_report(settings, target, endpoint["name"], say, since=since)
    err.print(f"[green]✓[/green] {one_line(result)}")
    return result
