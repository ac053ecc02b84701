"""The two code roots never import each other; the container code uses no SageMaker SDK."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# os.environ.get(...), os.getenv(...), os.environ["X"] used as a value (an assignment is a write).
ENV_READ = re.compile(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[[^\]]+\](?!\s*=[^=])")


def imported_modules(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [("local_mlops", {"mlops_container"}), ("containers", {"local_mlops", "sagemaker"})],
)
def test_code_roots_do_not_import_each_other(folder: str, forbidden: set[str]) -> None:
    modules = imported_modules(ROOT / folder)
    assert modules, f"no Python files under {folder}"
    offenders = {path: names & forbidden for path, names in modules.items() if names & forbidden}
    assert offenders == {}


def test_only_the_config_module_reads_the_environment() -> None:
    readers = []
    for path in (ROOT / "local_mlops").rglob("*.py"):
        if path.name != "config.py" and ENV_READ.search(path.read_text()):
            readers.append(path.name)
    assert readers == []
