"""``local-mlops data``: datasets into the bucket as Ground Truth-style manifests, and checks."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import typer

from local_mlops.cli.common import JSON_HELP, err, print_json, say, settings_from
from local_mlops.errors import LocalMlopsError

app = typer.Typer(help="Datasets.\n\nExample: local-mlops data import digits", no_args_is_help=True)


@app.command("import")
def import_(
    ctx: typer.Context,
    kind: str = typer.Argument(
        "digits", help="digits, cifar10, imagefolder, unlabeled or capture."
    ),
    data: Path = typer.Option(
        None, "--data", help="Archive or folder to import (cifar10, imagefolder, unlabeled)."
    ),
    name: str = typer.Option(
        None, "--name", help="Dataset name in the bucket (default: the kind)."
    ),
    per_class: int = typer.Option(
        None, "--per-class", help="cifar10: a seeded subset of N images per class."
    ),
    labels: Path = typer.Option(
        None, "--labels", help="unlabeled: a CSV filename,class or a JSONL manifest."
    ),
    skip_bad_images: bool = typer.Option(
        False, "--skip-bad-images", help="Import the readable images and list the others."
    ),
    endpoint_name: str = typer.Option(
        None, "--endpoint", help="capture: the endpoint whose labeled captures to import."
    ),
) -> None:
    """Import images into s3://BUCKET/datasets/NAME/ with a manifest.jsonl.

    `capture` imports an endpoint's captured requests that have ground truth (labeled with
    `local-mlops label --from-capture ENDPOINT`) as dataset capture-ENDPOINT, for
    `local-mlops run --data s3://BUCKET/datasets/capture-ENDPOINT/`.

    Example: local-mlops data import cifar10 --data ~/cifar-10-python.tar.gz --per-class 100

    Example: local-mlops data import capture --endpoint digits
    """
    from local_mlops.devenv.emulator import s3_endpoint
    from local_mlops.pipeline import datasets

    settings = settings_from(ctx)
    if kind == "capture":
        _check_capture_options(endpoint_name, data, per_class, labels, skip_bad_images)
        from local_mlops.pipeline.capture_import import import_capture

        with s3_endpoint(settings, announce=say) as endpoint:
            typer.echo(import_capture(settings, endpoint.url, endpoint_name, name, say))
        return
    if endpoint_name:
        raise LocalMlopsError(
            f"--endpoint is for `data import capture`, not {kind}", "drop --endpoint"
        )
    with s3_endpoint(settings, announce=say) as endpoint:
        uri = datasets.import_dataset(
            settings,
            endpoint.url,
            kind,
            name,
            data,
            per_class,
            labels,
            say,
            skip_bad_images=skip_bad_images,
        )
    typer.echo(uri)


def _check_capture_options(
    endpoint: str | None, data: Path | None, per_class: int | None, labels: Path | None, skip: bool
) -> None:
    if not endpoint:
        raise LocalMlopsError(
            "`data import capture` needs the endpoint", "pass --endpoint ENDPOINT"
        )
    given = [flag for flag, value in (("--data", data), ("--per-class", per_class),
             ("--labels", labels), ("--skip-bad-images", skip)) if value]  # fmt: skip
    if given:
        raise LocalMlopsError(
            f"{', '.join(given)} do not apply to `data import capture` (the images and labels "
            "are the endpoint's captures and ground truth; undecodable ones are always listed)",
            f"drop {', '.join(given)}",
        )


@app.command("validate")
def validate(
    ctx: typer.Context,
    folder: Path = typer.Argument(
        ..., help="A dataset folder with manifest.jsonl (and classes.json)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Run the pipeline's validation step on a local dataset folder, in the runtime image.

    Example: local-mlops data validate ./my-dataset
    """
    from local_mlops.devenv import dockerhost

    settings = settings_from(ctx)
    if not (folder / "manifest.jsonl").is_file():
        raise LocalMlopsError(
            f"{folder} has no manifest.jsonl", "import the data first or point at its folder"
        )
    dockerhost.docker_client()
    with tempfile.TemporaryDirectory(prefix="local-mlops-validate-") as tmp:
        argv = [
            "docker",
            "run",
            "--rm",
            "-v",
            f"{folder.resolve()}:/data/input:ro",
            "-v",
            f"{tmp}:/data/report",
            settings.image_uri,
            "python3",
            "-m",
            "mlops_container.validate",
            "--input-dir",
            "/data/input",
            "--output-dir",
            "/data/report",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        report_path = Path(tmp) / "report.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else None
    if report is None:
        raise LocalMlopsError(
            f"validation did not run: {done.stderr.strip()[-300:]}", "local-mlops doctor"
        )
    if as_json:
        print_json(report)
    else:
        for finding in report.get("errors", [])[:20]:
            where = f" ({finding['source-ref']})" if finding.get("source-ref") else ""
            err.print(f"[red]error[/red] {finding.get('rule')}: {finding.get('message')}{where}")
        for finding in report.get("warnings", [])[:20]:
            err.print(f"[yellow]warning[/yellow] {finding.get('rule')}: {finding.get('message')}")
        err.print(f"validation {report.get('status')}: {report.get('counts')}")
    if report.get("status") != "passed":
        raise typer.Exit(1)
