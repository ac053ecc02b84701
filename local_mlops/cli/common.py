"""What every command shares: the consoles, settings from the global options, JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from local_mlops.config import Settings, load_settings

# Progress and messages go to stderr; stdout stays machine-readable for --json.
err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)

JSON_HELP = "Print machine-readable JSON on stdout."
PROFILE_HELP = "AWS profile for --cloud (default: AWS_PROFILE, else the default credential chain)."
REGION_HELP = "AWS region for --cloud (default: AWS_REGION, else region in local-mlops.toml)."


def region_option() -> Any:
    """--region, which every command that takes --cloud also takes."""
    return typer.Option(None, "--region", help=REGION_HELP)


def profile_option() -> Any:
    """--profile, which every command that takes --cloud also takes."""
    return typer.Option(None, "--profile", help=PROFILE_HELP)


def settings_from(ctx: typer.Context, **overrides: Any) -> Settings:
    """Settings from the global --config plus this command's flags (None = not given)."""
    root = ctx.find_root()
    config: Path | None = (root.obj or {}).get("config")
    return load_settings({k: v for k, v in overrides.items() if v is not None}, config)


def say(message: str) -> None:
    err.print(f"[cyan]›[/cyan] {message}")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))
