"""``local-mlops label``: annotate images in the browser into a Ground Truth-style manifest."""

from __future__ import annotations

import contextlib
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from local_mlops.cli.common import JSON_HELP, err, print_json, say, settings_from
from local_mlops.errors import LocalMlopsError


def _classes(classes: str | None, classes_file: Path | None) -> list[str] | None:
    if classes and classes_file:
        raise LocalMlopsError("--classes and --classes-file both given", "pass only one")
    if classes_file is None:
        return [name.strip() for name in classes.split(",")] if classes else None
    try:
        value = json.loads(classes_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LocalMlopsError(
            f"cannot read {classes_file}: {exc}", 'write it as a JSON list: ["cat", "dog"]'
        ) from exc
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise LocalMlopsError(
            f"{classes_file} is not a JSON list of names", 'write it as ["cat", "dog"]'
        )
    return value


def _job_name(source: str) -> str:
    stem = source.rstrip("/").rsplit("/", 1)[-1] or "images"
    return re.sub(r"[^A-Za-z0-9-]+", "-", stem).strip("-").lower() or "images"


@contextlib.contextmanager
def _open_source(ctx: typer.Context, source: str, base_uri: str) -> Iterator[Any]:
    from local_mlops.labeling.sources import FolderSource, S3Source

    if not source.startswith("s3://"):
        yield FolderSource(Path(source).expanduser(), base_uri)
        return
    from local_mlops.devenv.emulator import s3_endpoint
    from local_mlops.s3 import s3_client

    settings = settings_from(ctx)
    with s3_endpoint(settings, announce=say) as endpoint:
        client = s3_client(settings, endpoint.url)
        yield S3Source(client, source, settings.state_path, base_uri)


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread (embedded use)
        signal.signal(signal.SIGTERM, handler)


def label(
    ctx: typer.Context,
    source: str = typer.Argument(
        ..., metavar="FOLDER", help="A folder of images, or s3://bucket/prefix/."
    ),
    classes: str = typer.Option(None, "--classes", help="Class names in label order: cat,dog."),
    classes_file: Path = typer.Option(
        None, "--classes-file", help="A classes.json (JSON list of names) instead of --classes."
    ),
    base_uri: str = typer.Option(
        "", "--base-uri", help="Prefix for source-refs (default: paths relative to the folder)."
    ),
    job_name: str = typer.Option(None, "--job-name", help="Default: the folder's name."),
    port: int = typer.Option(0, "--port", help="Port on 127.0.0.1 (default: a free one)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in a web browser."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Label images in your browser (keyboard-driven) into manifest.jsonl; resumable.

    Example: local-mlops label ./unlabeled --classes cat,dog,bird
    """
    from local_mlops.labeling import LabelingServer, LabelingSession

    names = _classes(classes, classes_file)
    with _open_source(ctx, source, base_uri) as image_source:
        session = LabelingSession(image_source, names, job_name or _job_name(source))
        session.open()
        for note in session.notes:
            say(note)
        server = LabelingServer(session, port)
        counts = session.counts()
        where = (
            f"{session.manifest_path} (uploaded next to the images when you stop)"
            if source.startswith("s3://")
            else str(session.manifest_path)
        )
        say(
            f"Labeling {counts['total']} images ({counts['labeled']} done) from "
            f"{image_source.description} into {where}"
        )
        err.print(f"Open [bold]{server.url}[/bold] — press Ctrl-C here to finish.")
        if open_browser:
            import webbrowser

            webbrowser.open(server.url)
        _stop_on_sigterm()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
            summary = session.close()
    summary["url"] = server.url
    if as_json:
        print_json(summary)
    else:
        err.print(
            f"{summary['labeled']} of {summary['total']} labeled, {summary['skipped']} skipped; "
            f"run the same command to continue."
        )
        typer.echo(summary["manifest"])
