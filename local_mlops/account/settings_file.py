"""Write settings into ``local-mlops.toml`` without disturbing the rest of the file.

Lines that set one of the given keys (at the top level, or in a ``[local-mlops]`` table when the
file uses one) are replaced in place; new keys go at the end of that section. Comments, order and
every other key stay as they were, and the result is parsed again before it replaces the file.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from local_mlops.config import CONFIG_FILE_NAME
from local_mlops.errors import LocalMlopsError

TABLE = re.compile(r"^\s*\[")
SECTION = "local-mlops"


def _quote(value: str) -> str:
    # A TOML basic string: JSON's escapes are valid TOML for the characters names can hold.
    return json.dumps(value)


def _section(lines: list[str], uses_table: bool) -> tuple[int, int]:
    """[start, end) of the lines holding the settings."""
    if not uses_table:
        end = next((i for i, line in enumerate(lines) if TABLE.match(line)), len(lines))
        return 0, end
    start = next(i for i, line in enumerate(lines) if line.strip() == f"[{SECTION}]") + 1
    end = next((i for i in range(start, len(lines)) if TABLE.match(lines[i])), len(lines))
    return start, end


def update(path: Path, values: Mapping[str, str]) -> Path:
    """Set ``values`` in the settings file at ``path`` (created when missing); returns the path."""
    text = path.read_text() if path.exists() else ""
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LocalMlopsError(f"cannot read {path}: {exc}", f"fix or remove {path}") from exc
    uses_table = isinstance(before.get(SECTION), dict)
    lines = text.splitlines()
    start, end = _section(lines, uses_table)
    pending = dict(values)
    for index in range(start, end):
        match = re.match(r"^\s*([A-Za-z0-9_-]+)\s*=", lines[index])
        if match and match[1] in pending:
            key = match[1]
            lines[index] = f"{key} = {_quote(pending.pop(key))}"
    insert_at = end
    while insert_at > start and not lines[insert_at - 1].strip():
        insert_at -= 1
    lines[insert_at:insert_at] = [f"{key} = {_quote(value)}" for key, value in pending.items()]
    result = "\n".join(lines) + "\n"
    after = tomllib.loads(result)
    merged = after.get(SECTION, after) if uses_table else after
    if any(merged.get(k) != v for k, v in values.items()):
        raise LocalMlopsError(
            f"could not write {', '.join(values)} into {path}",
            f"set them by hand in {path}: {dict(values)}",
        )
    path.write_text(result)
    return path


def target_file(found: Path | None) -> Path:
    """The settings file to write: the one in use, else a new one in the current folder."""
    return found or Path.cwd() / CONFIG_FILE_NAME
