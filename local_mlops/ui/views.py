"""What each page shows, computed from the dashboard's data: rows, charts, the run graph."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from html import escape
from typing import Any

from local_mlops.ui.charts import Series, bar_chart, heatmap, line_chart
from local_mlops.ui.data import Dashboard, RunView, parse_time, seconds_between

STATUS_CLASS = {
    "Succeeded": "ok",
    "Executing": "live",
    "Starting": "live",
    "Retrying": "live",
    "Failed": "bad",
    "Stopped": "warn",
    "Stopping": "warn",
}
CURVES = (
    ("accuracy", ("train_accuracy", "val_accuracy"), "accuracy (fraction)", (0.0, 1.0)),
    ("loss", ("train_loss", "val_loss"), "loss (cross-entropy)", None),
    ("throughput", ("images_per_sec",), "images/s", None),
)


# formatting filters
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return (
        f"{minutes} min {rest:02d} s"
        if minutes < 60
        else f"{minutes // 60} h {minutes % 60:02d} min"
    )


def when(value: Any) -> str:
    parsed = parse_time(value)
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC") if parsed else "—"


def pct(value: Any) -> str:
    return f"{float(value) * 100:.2f}%" if isinstance(value, int | float) else "—"


def num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value in (None, "") else str(value)
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def status_class(status: str) -> str:
    return STATUS_CLASS.get(status, "muted")


# runs
def run_row(view: RunView) -> dict[str, Any]:
    return {
        "id": view.id,
        "status": view.status,
        "start": view.record.get("StartTime"),
        "seconds": view.seconds,
        "parameters": view.parameters,
        "accuracy": view.accuracy,
        "version": (view.package or {}).get("ModelPackageVersion"),
        "failure": view.record.get("FailureReason") or "",
    }


def run_context(view: RunView, settings: Any) -> dict[str, Any]:
    steps = []
    for step in view.steps:
        steps.append(
            {
                **step,
                "seconds": seconds_between(step.get("StartTime"), step.get("EndTime")),
                "cache": _cache_note(step),
                "css": status_class(str(step.get("StepStatus", ""))),
            }
        )
    return {
        "steps": steps,
        "graph_svg": run_graph(view, settings),
        "curves": training_curves(view.histories),
        "row": run_row(view),
    }


def _cache_note(step: dict[str, Any]) -> str:
    decision = step.get("Cache") or {}
    if decision.get("Reason"):
        return str(decision["Reason"])
    hit = step.get("CacheHitResult") or {}
    if hit.get("SourcePipelineExecutionArn"):
        return (
            "served from the cache of " + str(hit["SourcePipelineExecutionArn"]).rsplit("/", 1)[-1]
        )
    return str(step.get("CacheReason") or "")


def training_curves(histories: dict[str, list[dict[str, float]]]) -> list[str]:
    """Per-epoch curves of every training job of a run (one line per job and metric)."""
    if not histories:
        return []
    charts = []
    many = len(histories) > 1
    for title, names, unit, y_range in CURVES:
        series = []
        for job, history in histories.items():
            for name in names:
                points = [
                    (float(h.get("epoch", i + 1)), float(h[name]))
                    for i, h in enumerate(history)
                    if isinstance(h.get(name), int | float)
                ]
                if points:
                    label = f"{_short(job)} {name}" if many else name
                    series.append(Series(label, points, dashed=name.startswith("train")))
        charts.append(
            line_chart(
                series, title=f"{title} per epoch", x_label="epoch", y_label=unit, y_range=y_range
            )
        )
    return charts


def _short(job: str) -> str:
    return job[-10:]


def compare_context(left: RunView, right: RunView) -> dict[str, Any]:
    names = sorted(set(left.parameters) | set(right.parameters))
    parameters = [
        (
            n,
            left.parameters.get(n, "—"),
            right.parameters.get(n, "—"),
            left.parameters.get(n) != right.parameters.get(n),
        )
        for n in names
    ]
    metrics = []
    lm, rm = (left.package or {}).get("Metrics") or {}, (right.package or {}).get("Metrics") or {}
    for name in sorted(set(lm) | set(rm)):
        metrics.append((name, lm.get(name), rm.get(name)))
    merged = {f"{left.id} {k}": v for k, v in left.histories.items()}
    merged |= {f"{right.id} {k}": v for k, v in right.histories.items()}
    curves = []
    for metric, unit in (
        ("val_accuracy", "accuracy (fraction)"),
        ("val_loss", "loss (cross-entropy)"),
    ):
        series = [
            Series(
                label.split(" ")[0],
                [
                    (float(h.get("epoch", i + 1)), float(h[metric]))
                    for i, h in enumerate(hist)
                    if metric in h
                ],
            )
            for label, hist in merged.items()
        ]
        curves.append(
            line_chart(series, title=f"{metric} per epoch", x_label="epoch", y_label=unit)
        )
    return {
        "left": left,
        "right": right,
        "parameters": parameters,
        "metrics": metrics,
        "curves": curves,
    }


# registry
def package_rows(packages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for package in packages:
        metrics = package.get("Metrics") or {}
        containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
        rows.append(
            {
                "version": package.get("ModelPackageVersion"),
                "status": package.get("ModelApprovalStatus", ""),
                "accuracy": metrics.get("accuracy"),
                "macro_f1": metrics.get("macro_f1"),
                "created": package.get("CreationTime"),
                "run": str(package.get("PipelineExecutionArn") or "").rsplit("/", 1)[-1],
                "model_data": containers[0].get("ModelDataUrl", ""),
                "image": containers[0].get("Image", ""),
                "reason": package.get("ApprovalDescription", ""),
            }
        )
    return rows


def model_context(
    package: dict[str, Any], evaluation: dict[str, Any], dashboard: Dashboard
) -> dict[str, Any]:
    report = evaluation.get("multiclass_classification_metrics") or {}
    matrix_doc = report.get("confusion_matrix") or {}
    classes = list(matrix_doc)
    matrix = [[float(matrix_doc[t].get(p, 0)) for p in classes] for t in classes]
    per_class = evaluation.get("per_class") or {}
    per_class_chart = bar_chart(
        list(per_class),
        [
            (name, [float(v.get(name, 0)) for v in per_class.values()])
            for name in ("precision", "recall", "f1")
        ],
        title="per-class scores on the test split",
        x_label="class",
        y_label="score (fraction)",
    )
    row = package_rows([package])[0]
    run = row["run"]
    return {
        "row": row,
        "metrics": {
            k: (v.get("value") if isinstance(v, dict) else v)
            for k, v in report.items()
            if k != "confusion_matrix"
        },
        "confusion_svg": heatmap(classes, matrix, title="confusion matrix (test split)"),
        "per_class_svg": per_class_chart,
        "test_items": evaluation.get("test_items"),
        "lineage": _lineage(dashboard, run, row),
    }


def _lineage(dashboard: Dashboard, run: str, row: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, label, link) from the dataset to this version."""
    chain: list[tuple[str, str, str]] = []
    record: dict[str, Any] = {}
    if run:
        try:
            record = dashboard.runstore.get(run)
        except Exception:  # a version registered by a run whose record is gone
            record = {}
    data = (record.get("Parameters") or {}).get("InputData") or dashboard.settings.dataset
    chain.append(("dataset", str(data), ""))
    chain.append(("run", run or "—", f"/runs/{run}" if record else ""))
    chain.append(("model version", f"v{row['version']}", f"/models/{row['version']}"))
    return chain


# the run graph
_STEP_REF = re.compile(r'"Steps\.([A-Za-z0-9_-]+)')


def edges_of(definition: dict[str, Any]) -> list[tuple[str, str]]:
    """(upstream, downstream) pairs of a pipeline definition — data references, DependsOn and
    condition branches — without the edges a longer path already implies."""
    found: set[tuple[str, str]] = set()

    def walk(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            name = step["Name"]
            body = step.get("Arguments") or {}
            for upstream in step.get("DependsOn") or []:
                found.add((upstream, name))
            scanned = body.get("Conditions") if step.get("Type") == "Condition" else body
            for ref in _STEP_REF.findall(json.dumps(scanned)):
                if ref != name:
                    found.add((ref, name))
            for key in ("IfSteps", "ElseSteps"):
                for child in body.get(key) or []:
                    found.add((name, child["Name"]))
                walk(body.get(key) or [])

    walk(definition.get("Steps") or [])
    return sorted(edge for edge in found if not _implied(edge, found))


def _implied(edge: tuple[str, str], edges: set[tuple[str, str]]) -> bool:
    """Whether ``edge`` is also reachable through at least one other step."""
    start, goal = edge
    frontier = [d for u, d in edges if u == start and d != goal]
    seen: set[str] = set()
    while frontier:
        node = frontier.pop()
        if node == goal:
            return True
        if node in seen:
            continue
        seen.add(node)
        frontier.extend(d for u, d in edges if u == node)
    return False


def display_name(step: str) -> str:
    """ModelStep names come out as ``Name-Name``; show ``Name``."""
    head, sep, tail = step.partition("-")
    return head if sep and head == tail else step


@lru_cache(maxsize=4)
def _definition_edges(settings: Any, tune: bool) -> tuple[tuple[str, str], ...]:
    """The graph's edges as the definition wires them (built once per settings and variant)."""
    from local_mlops import targets
    from local_mlops.pipeline import graph

    pipeline = graph.build_pipeline(settings, targets.definition_session(settings), tune=tune)
    return tuple(edges_of(json.loads(pipeline.definition())))


def run_graph(view: RunView, settings: Any) -> str:
    """The pipeline's steps in layers, each box coloured by its state and labelled with its
    duration; steps that did not run are drawn dashed."""
    from local_mlops.pipeline import graph

    names = {str(s.get("StepName")) for s in view.steps}
    tune = graph.TUNE in names
    edges = list(_definition_edges(settings, tune))
    nodes = sorted({n for e in edges for n in e} | names)
    by_name = {str(s.get("StepName")): s for s in view.steps}
    depth: dict[str, int] = {}

    def level(node: str, seen: frozenset[str] = frozenset()) -> int:
        if node in depth:
            return depth[node]
        ups = [u for u, d in edges if d == node and u not in seen]
        depth[node] = 0 if not ups else 1 + max(level(u, seen | {node}) for u in ups)
        return depth[node]

    for node in nodes:
        level(node)
    layers: dict[int, list[str]] = {}
    for node in nodes:
        layers.setdefault(depth[node], []).append(node)
    box_w, box_h, gap_x, gap_y = 132, 46, 34, 18
    width = len(layers) * (box_w + gap_x) + 10
    height = max(len(v) for v in layers.values()) * (box_h + gap_y) + 20 if layers else 60
    pos: dict[str, tuple[float, float]] = {}
    for col, members in sorted(layers.items()):
        for row, node in enumerate(sorted(members, key=_order)):
            pos[node] = (10 + col * (box_w + gap_x), 10 + row * (box_h + gap_y))
    parts = [
        f'<svg class="dag" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="pipeline graph" xmlns="http://www.w3.org/2000/svg">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#94a3b8"/></marker></defs>'
    ]
    for up, down in edges:
        if up in pos and down in pos:
            (x1, y1), (x2, y2) = pos[up], pos[down]
            parts.append(
                f'<path d="M{x1 + box_w},{y1 + box_h / 2} C{x1 + box_w + gap_x / 2},{y1 + box_h / 2} '
                f'{x2 - gap_x / 2},{y2 + box_h / 2} {x2},{y2 + box_h / 2}" class="edge" '
                'marker-end="url(#arrow)"/>'
            )
    for node, (x, y) in pos.items():
        step = by_name.get(node)
        status = str(step.get("StepStatus")) if step else "Not run"
        css = status_class(status) if step else "skipped"
        secs = seconds_between(step.get("StartTime"), step.get("EndTime")) if step else None
        detail = status + (f" · {duration(secs)}" if secs is not None else "")
        if step and step.get("CacheHitResult"):
            detail = "cached"
        parts.append(
            f'<g class="node {css}"><title>{escape(display_name(node))}: {escape(detail)}</title>'
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="8"/>'
            f'<text x="{x + box_w / 2}" y="{y + 19}" text-anchor="middle" class="node-name">'
            f"{escape(display_name(node))}</text>"
            f'<text x="{x + box_w / 2}" y="{y + 35}" text-anchor="middle" class="node-detail">'
            f"{escape(detail)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _order(name: str) -> int:
    order = ("RegisterModel", "CreateModel", "AccuracyTooLow")
    return order.index(display_name(name)) if display_name(name) in order else 0
