"""The least-privilege rules the project's IAM policies keep, checked on a policy document.

For every Allow statement: no wildcard action (``*`` or ``service:*``), no NotAction or
NotResource, and no ``"Resource": "*"`` with an action that is not read-only. Two actions IAM
cannot scope to a resource are allowed on ``*``: ``ecr:GetAuthorizationToken`` (read-only) and
``cloudwatch:PutMetricData``, which must carry its namespace condition.
"""

from __future__ import annotations

import json
from typing import Any

READ_VERBS = (
    "Get",
    "List",
    "Describe",
    "Head",
    "Search",
    "Query",
    "Scan",
    "Select",
    "Lookup",
    "Check",
    "Validate",
    "View",
    "Read",
)
# Actions without resource-level permissions, allowed on "*" only with this condition key.
UNSCOPABLE_WRITES = {"cloudwatch:PutMetricData": "cloudwatch:namespace"}


def parse(document: Any) -> dict[str, Any]:
    """A policy document as a dict: boto3 decodes IAM's URL-encoded JSON into one; moto 5.2.5
    answers a policy its CloudFormation stored with the Python repr of one."""
    if not isinstance(document, str):
        return dict(document or {})
    from urllib.parse import unquote

    text = document if document.lstrip().startswith("{") else unquote(document)
    try:
        return dict(json.loads(text))
    except json.JSONDecodeError:
        import ast

        return dict(ast.literal_eval(text))


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def is_read_only(action: str) -> bool:
    """Whether an action only reads (a wildcard in the name may match writes: not read-only)."""
    verb = action.split(":", 1)[-1]
    return "*" not in verb and verb.startswith(READ_VERBS)


def _condition_keys(statement: dict[str, Any]) -> set[str]:
    keys: set[str] = set()
    for operator in (statement.get("Condition") or {}).values():
        keys.update(operator)
    return keys


def violations(document: dict[str, Any], where: str = "") -> list[str]:
    """One line for each rule a policy document breaks ([] when it keeps them all)."""
    found = []
    for index, statement in enumerate(_listed(parse(document).get("Statement", []))):
        if statement.get("Effect") != "Allow":
            continue
        label = f"{where}statement {statement.get('Sid', index)}"
        if "NotAction" in statement or "NotResource" in statement:
            found.append(f"{label}: NotAction/NotResource allows more than it names")
        actions = [str(a) for a in _listed(statement.get("Action", []))]
        resources = _listed(statement.get("Resource", []))
        for action in actions:
            if action == "*" or action.endswith(":*"):
                found.append(f"{label}: wildcard action {action!r}")
        if "*" not in resources:
            continue
        for action in actions:
            if is_read_only(action):
                continue
            needed = UNSCOPABLE_WRITES.get(action)
            if needed and needed in _condition_keys(statement):
                continue
            found.append(f"{label}: {action} on Resource '*'")
    return found
