"""Charts drawn on the server as inline SVG: no script library, nothing fetched from a CDN.

Every chart has labelled axes with units, tick values and a legend, so it reads on its own.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

TICK_CHAR_PX = 6.5  # a character of the 11 px tick and legend font, wide enough for digits
PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False


def _ticks(low: float, high: float, count: int = 5, integers: bool = False) -> list[float]:
    """Round tick values covering [low, high] (whole numbers only when ``integers``)."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count - 1)
    if integers:
        raw = max(1.0, float(math.ceil(raw)))
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.floor(low / step) * step
    ticks: list[float] = []
    value = start
    while len(ticks) < 12:  # up to the first tick at or above ``high``: no point is cut off
        ticks.append(round(value, 10))
        if value >= high - step * 1e-9:
            break
        value += step
    return ticks


# Tick steps in seconds: 1 s to a week.
TIME_STEPS: tuple[int, ...] = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
TIME_STEPS += (7200, 10800, 21600, 43200, 86400, 172800, 604800)


def time_ticks(low: float, high: float, count: int = 6) -> list[tuple[float, str]]:
    """Tick positions (POSIX seconds) on round clock times within [low, high], labelled in UTC."""
    span = max(high - low, 1.0)
    step = next((s for s in TIME_STEPS if span / s <= count - 1), TIME_STEPS[-1])
    if step < 60:
        pattern = "%H:%M:%S"
    elif span >= 86400:
        pattern = "%m-%d %H:%M" if step < 86400 else "%Y-%m-%d"
    else:
        pattern = "%H:%M"
    ticks = []
    value = math.ceil(low / step) * step
    while value <= high:
        ticks.append((float(value), dt.datetime.fromtimestamp(value, dt.UTC).strftime(pattern)))
        value += step
    return ticks or [(low, dt.datetime.fromtimestamp(low, dt.UTC).strftime(pattern))]


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 560,
    height: int = 260,
    y_range: tuple[float, float] | None = None,
    threshold: tuple[float, str] | None = None,
    x_time: bool = False,
    x_range: tuple[float, float] | None = None,
) -> str:
    """A line chart of one or more series; ``threshold`` draws a labelled horizontal line;
    ``x_time``: x values are POSIX seconds, ticked on round UTC clock times, over ``x_range``
    when given (else the data's)."""
    points = [p for s in series for p in s.points]
    if not points:
        return f'<p class="empty">{escape(title)}: no data yet.</p>'
    xs = [p[0] for p in points]
    ys = [p[1] for p in points] + ([threshold[0]] if threshold else [])
    if x_time:
        x0, x1 = x_range or (min(xs), max(xs))
        x1 = x1 if x1 > x0 else x0 + 60
        x_ticks = time_ticks(x0, x1)
    else:
        plain = _ticks(min(xs), max(xs), 6, integers=all(float(x).is_integer() for x in xs))
        x_ticks = [(t, _fmt(t)) for t in plain]
        x0, x1 = plain[0], plain[-1] if plain[-1] > plain[0] else plain[0] + 1
    # The last x tick is centred on the plot's right edge: leave room for half its label.
    left, right, bottom = 56, max(16, round(TICK_CHAR_PX * len(x_ticks[-1][1]) / 2) + 4), 44
    legend = _legend_rows([s.label for s in series], left + 8, width - right)
    top = 30 + 16 * len({row for _, row in legend})
    height += top - 44
    plot_w, plot_h = width - left - right, height - top - bottom
    y_ticks = _ticks(*(y_range or (min(ys), max(ys))))
    y0, y1 = y_ticks[0], y_ticks[-1] if y_ticks[-1] > y_ticks[0] else y_ticks[0] + 1

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for t in y_ticks:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" class="tick" text-anchor="end">{_fmt(t)}</text>'
        )
    for t, label in x_ticks:
        parts.append(
            f'<text x="{sx(t):.1f}" y="{top + plot_h + 16}" class="tick" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" class="axis"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" class="axis"/>'
        f'<text x="{left + plot_w / 2}" y="{height - 6}" class="axis-label" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" class="axis-label" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    if threshold:
        y = sy(threshold[0])
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="threshold"/>'
            f'<text x="{left + plot_w - 4}" y="{y - 4:.1f}" class="tick" text-anchor="end">'
            f"{escape(threshold[1])}</text>"
        )
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s.points)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
        )
        parts.extend(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}">'
            f"<title>{escape(s.label)}: {_x_text(x, x_time)}, {y:.4g}</title></circle>"
            for x, y in s.points
        )
        lx, row = legend[i]
        ly = 30 + 16 * row
        parts.append(
            f'<line x1="{lx}" x2="{lx + 14}" y1="{ly - 4}" y2="{ly - 4}" '
            f'stroke="{color}" stroke-width="2"{dash}/>'
            f'<text x="{lx + 18}" y="{ly}" class="legend">{escape(s.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _legend_rows(labels: Sequence[str], start: float, end: float) -> list[tuple[float, int]]:
    """(x, row) of each legend entry, wrapping to a new row when one would pass ``end``."""
    placed, x, row = [], start, 0
    for label in labels:
        width = 32 + TICK_CHAR_PX * len(label)
        if x > start and x + width > end:
            x, row = start, row + 1
        placed.append((x, row))
        x += width
    return placed


def _x_text(x: float, x_time: bool) -> str:
    if x_time:
        return dt.datetime.fromtimestamp(x, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return _fmt(x)


def bar_chart(
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 560,
    height: int = 240,
) -> str:
    """Grouped bars: one group per category, one bar per series, with a legend."""
    if not groups or not series:
        return f'<p class="empty">{escape(title)}: no data yet.</p>'
    left, right, top, bottom = 56, 16, 44, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max((v for _, values in series for v in values), default=1.0) or 1.0
    y_ticks = _ticks(0.0, top_value)
    y1 = y_ticks[-1] or 1.0
    group_w = plot_w / len(groups)
    bar_w = max(2.0, group_w * 0.8 / len(series))
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for t in y_ticks:
        y = top + plot_h - t / y1 * plot_h
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{_fmt(t)}</text>'
        )
    for gi, name in enumerate(groups):
        gx = left + gi * group_w + group_w * 0.1
        for si, (label, values) in enumerate(series):
            value = values[gi] if gi < len(values) else 0.0
            h = value / y1 * plot_h
            parts.append(
                f'<rect x="{gx + si * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 1:.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[si % len(PALETTE)]}">'
                f"<title>{escape(label)} {escape(name)}: {value:.4g}</title></rect>"
            )
        parts.append(
            f'<text x="{left + gi * group_w + group_w / 2:.1f}" y="{top + plot_h + 16}" '
            f'class="tick" text-anchor="middle">{escape(name)}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" class="axis"/>'
        f'<text x="{left + plot_w / 2}" y="{height - 6}" class="axis-label" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" class="axis-label" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    legend_x = left + 8
    for si, (label, _) in enumerate(series):
        parts.append(
            f'<rect x="{legend_x}" y="{top - 22}" width="10" height="10" '
            f'fill="{PALETTE[si % len(PALETTE)]}"/>'
            f'<text x="{legend_x + 14}" y="{top - 13}" class="legend">{escape(label)}</text>'
        )
        legend_x += 28 + 7 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def heatmap(classes: Sequence[str], matrix: Sequence[Sequence[float]], *, title: str) -> str:
    """A confusion matrix: rows are the true class, columns the predicted one, counts in cells."""
    n = len(classes)
    if not n or len(matrix) != n:
        return f'<p class="empty">{escape(title)}: no data.</p>'
    cell = max(22, min(44, 360 // n))
    left, top = 70, 50
    size = cell * n
    width, height = max(320, left + size + 20), top + size + 40
    peak = max((v for row in matrix for v in row), default=1) or 1
    parts = [
        f'<svg class="chart heatmap" viewBox="0 0 {width} {height}" style="max-width:{width}px" '
        'role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
        f'<text x="{left + size / 2}" y="36" class="axis-label" text-anchor="middle">'
        "predicted class</text>",
        f'<text transform="translate(14 {top + size / 2}) rotate(-90)" class="axis-label" '
        'text-anchor="middle">true class</text>',
    ]
    for i, name in enumerate(classes):
        parts.append(
            f'<text x="{left + i * cell + cell / 2}" y="{top - 4}" class="tick" '
            f'text-anchor="middle">{escape(str(name))}</text>'
            f'<text x="{left - 6}" y="{top + i * cell + cell / 2 + 4}" class="tick" '
            f'text-anchor="end">{escape(str(name))}</text>'
        )
        for j in range(n):
            value = matrix[i][j]
            shade = value / peak
            fill = f"rgba(37,99,235,{0.08 + 0.92 * shade:.2f})" if value else "#f8fafc"
            ink = "#fff" if shade > 0.55 else "#0f172a"
            parts.append(
                f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell}" height="{cell}" '
                f'fill="{fill}" stroke="#e2e8f0"><title>true {escape(str(classes[i]))}, predicted '
                f"{escape(str(classes[j]))}: {_fmt(value)}</title></rect>"
                f'<text x="{left + j * cell + cell / 2}" y="{top + i * cell + cell / 2 + 4}" '
                f'class="cell" fill="{ink}" text-anchor="middle">{_fmt(value)}</text>'
            )
    parts.append(
        f'<text x="{left}" y="{height - 8}" class="legend">cell = number of test images</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
