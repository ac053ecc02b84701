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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, deferred (function-body) imports included."""
    paths = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_orchestration_package_has_no_import_cycle() -> None:
    graph = import_graph("local_mlops")
    assert "local_mlops.targets.localmode.session" in graph
    assert cycles(graph) == []


def test_the_cycle_finder_sees_a_deferred_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Reading which target is configured, or comparing a target's name: only the targets package
# (and config.py, which defines the setting) may do it; everything else asks the Target.
TARGET_BRANCH = re.compile(
    r"\bis_local\b|\bsettings\.target\b|\.target\s*(?:==|!=|\bin\b|\bnot in\b)"
    r"|\btarget\.name\s*(?:==|!=|\bin\b)|[=!]=\s*[\"'](?:local|cloud)[\"']"
)


def test_only_the_targets_package_branches_on_the_target() -> None:
    package = ROOT / "local_mlops"
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in package.rglob("*.py")
        if path.name != "config.py" and (package / "targets") not in path.parents
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if TARGET_BRANCH.search(line)
    ]
    assert offenders == []


def test_the_target_branch_finder_sees_each_form() -> None:
    for line in (
        "if target.is_local:",
        'if settings.target == "cloud":',
        "kind = settings.target",
        'if target.name != "local":',
        'return x if name == "cloud" else y',
    ):
        assert TARGET_BRANCH.search(line), line
    assert not TARGET_BRANCH.search('settings_from(ctx, target="local" if local else "cloud")')
