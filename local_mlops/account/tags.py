"""The tags on everything the project creates in an AWS account, and how teardown reads them.

``local-mlops:project`` marks a resource as the project's (``cloud down`` deletes only those),
``local-mlops:created-by`` names the command that made it, ``local-mlops:run`` the pipeline run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from local_mlops.config import Settings

PROJECT = "local-mlops:project"
CREATED_BY = "local-mlops:created-by"
RUN = "local-mlops:run"


def project_tags(settings: Settings, created_by: str, run: str = "") -> list[dict[str, str]]:
    """Tags in the ``[{"Key": ..., "Value": ...}]`` shape most AWS APIs take."""
    tags = {PROJECT: settings.project, CREATED_BY: created_by}
    if run:
        tags[RUN] = run
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def as_dict(tags: Iterable[Mapping[str, str]] | Mapping[str, str] | None) -> dict[str, str]:
    """Any of the AWS tag shapes (``Key``/``Value``, ``key``/``value``, a plain map) as a dict."""
    if not tags:
        return {}
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    found: dict[str, str] = {}
    for tag in tags:
        key = tag.get("Key", tag.get("key"))
        if key is not None:
            found[str(key)] = str(tag.get("Value", tag.get("value", "")))
    return found


def is_project(
    settings: Settings, tags: Iterable[Mapping[str, str]] | Mapping[str, str] | None
) -> bool:
    """Whether the tags mark a resource as this project's."""
    return as_dict(tags).get(PROJECT) == settings.project
