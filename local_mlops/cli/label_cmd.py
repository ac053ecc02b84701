"""``local-mlops label``: annotate images in the browser into a Ground Truth-style manifest."""

from __future__ import annotations

import contextlib
import json
import re
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
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
def _open_source(
    ctx: typer.Context, source: str, base_uri: str, endpoint: str | None, since: datetime | None
) -> Iterator[Any]:
    from local_mlops.labeling.sources import FolderSource, S3Source

    if endpoint is None and not source.startswith("s3://"):
        yield FolderSource(Path(source).expanduser(), base_uri)
        return
    from local_mlops.devenv.emulator import s3_endpoint
    from local_mlops.s3 import s3_client

    settings = settings_from(ctx)
    with s3_endpoint(settings, announce=say) as s3:
        client = s3_client(settings, s3.url)
        if endpoint is None:
            yield S3Source(client, source, settings.state_path, base_uri)
            return
        from local_mlops.labeling.captures import CaptureSource
        from local_mlops.serving.captured import capture_location

        location = capture_location(settings, endpoint)
        yield CaptureSource(client, location, settings.bucket, settings.state_path, since)


def _check_arguments(
    source: str | None, endpoint: str | None, window: str | None
) -> tuple[str, datetime | None]:
    """The job's name and the window's start, or an error for a wrong combination."""
    if source and endpoint:
        raise LocalMlopsError(
            "a FOLDER and --from-capture both given", "label either a folder or an endpoint"
        )
    if not source and not endpoint:
        raise LocalMlopsError(
            "nothing to label", "pass a FOLDER, s3://bucket/prefix/ or --from-capture ENDPOINT"
        )
    if window and not endpoint:
        raise LocalMlopsError("--window is for --from-capture", "drop --window for a folder")
    from local_mlops.serving.captured import parse_window

    since = datetime.now(UTC) - parse_window(window) if window else None
    return source or f"capture-{endpoint}", since


def _list_undecodable(image_source: Any) -> list[dict[str, str]]:
    """Say which captured requests cannot be shown; the same list goes in the summary."""
    bad = [
        {"key": i.key, "event_id": i.event_id, "capture": i.capture_uri, "reason": i.problem}
        for i in getattr(image_source, "undecodable", [])
    ]
    if bad:
        say(f"{len(bad)} captured image(s) cannot be decoded and are left out:")
        for entry in bad[:20]:
            say(f"  {entry['key']} in {entry['capture']}: {entry['reason']}")
        if len(bad) > 20:
            say(f"  ... and {len(bad) - 20} more (all in --json)")
    return bad


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread (embedded use)
        signal.signal(signal.SIGTERM, handler)


def label(
    ctx: typer.Context,
    source: str = typer.Argument(
        None, metavar="FOLDER", help="A folder of images, or s3://bucket/prefix/."
    ),
    from_capture: str = typer.Option(
        None,
        "--from-capture",
        metavar="ENDPOINT",
        help="Label the endpoint's captured requests; each label is also its ground truth.",
    ),
    window: str = typer.Option(
        None, "--window", help="With --from-capture: only the last 30m, 1h, 7d... of captures."
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

    With --from-capture ENDPOINT the images are the endpoint's captured requests (the model's
    answer offered as a suggestion, Enter takes it) and every label is written as ground truth
    to s3://BUCKET/groundtruth/ENDPOINT/, where `monitor run` and `data import capture` read it.

    Example: local-mlops label ./unlabeled --classes cat,dog,bird

    Example: local-mlops label --from-capture digits --window 1h
    """
    from local_mlops.labeling import LabelingServer, LabelingSession

    name, since = _check_arguments(source, from_capture, window)
    names = _classes(classes, classes_file)
    with _open_source(ctx, source or "", base_uri, from_capture, since) as image_source:
        undecodable = _list_undecodable(image_source)
        if from_capture and not names:
            names = image_source.classes or None  # the model's, from its answers
        session = LabelingSession(image_source, names, job_name or _job_name(name))
        session.open()
        for note in session.notes:
            say(note)
        server = LabelingServer(session, port)
        counts = session.counts()
        if from_capture:
            where = f"ground truth under {image_source.ground_truth.uri} (on every label)"
        elif source.startswith("s3://"):
            where = f"{session.manifest_path} (uploaded next to the images when you stop)"
        else:
            where = str(session.manifest_path)
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
    if from_capture:
        summary["ground_truth"] = summary["manifest"]
        summary["manifest"] = str(session.manifest_path)
        summary["undecodable"] = undecodable
    if as_json:
        print_json(summary)
    else:
        err.print(
            f"{summary['labeled']} of {summary['total']} labeled, {summary['skipped']} skipped; "
            f"run the same command to continue."
        )
        typer.echo(summary.get("ground_truth") or summary["manifest"])
