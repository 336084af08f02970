"""Charts drawn on the server as inline SVG: no script, no CDN, readable in any browser and in screenshots.

`line_chart` plots named series of (x, y) points — eval pass@1 across rounds, a round's training loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#2f6fdf", "#1f9d55", "#d9480f", "#7048e8", "#c2255c", "#0c8599", "#e67700", "#495057")


def svg_head(title: str, width: int, height: int, left: int, element_id: str = "") -> str:
    """The opening of a chart: the <svg> element (with its accessible title) and the visible title."""
    id_attr = f' id="{escape(element_id)}"' if element_id else ""
    return (
        f'<svg class="chart" role="img"{id_attr} viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>'
    )


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.ceil(low / step) * step
    ticks, value = [], start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float, percent: bool) -> str:
    if percent:
        return f"{value:.0%}"
    if abs(value) >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.3g}"


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    percent: bool = False,
    y_range: tuple[float, float] | None = None,
    width: int = 640,
    height: int = 260,
    element_id: str = "",
) -> SafeString:
    """An SVG line chart (with points and a legend) of each named series; empty series are left out."""
    series = {
        name: [(float(x), float(y)) for x, y in pts if y is not None and math.isfinite(float(y))]
        for name, pts in series.items()
    }
    series = {name: pts for name, pts in series.items() if pts}
    left, right, top, bottom = 56, 16, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    head = svg_head(title, width, height, left, element_id)
    if not series:
        return mark_safe(head + f'<text x="{left}" y="{top + plot_h / 2}" class="chart-empty">no data yet</text></svg>')
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x_lo, x_hi = min(xs), max(xs)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_lo, y_hi = y_range if y_range else (min(ys), max(ys))
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def py(y: float) -> float:
        return top + (1 - (y - y_lo) / (y_hi - y_lo)) * plot_h

    parts = [head, f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="chart-frame"/>']
    for tick in _ticks(y_lo, y_hi):
        y = py(tick)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="chart-grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="chart-axis" text-anchor="end">'
            f"{_fmt(tick, percent)}</text>"
        )
    integer_x = all(float(x).is_integer() for x in xs)
    x_ticks = sorted(set(xs)) if integer_x and len(set(xs)) <= 12 else _ticks(x_lo, x_hi)
    for tick in x_ticks:
        parts.append(
            f'<text x="{px(tick):.1f}" y="{top + plot_h + 16}" class="chart-axis" text-anchor="middle">'
            f"{_fmt(tick, False)}</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 6}" class="chart-label" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="14" y="{top + plot_h / 2}" class="chart-label" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>'
    )
    legend_x = left + 8
    for i, (name, pts) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        pts = sorted(pts)
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        parts.append(
            f'<g class="series" data-name="{escape(name)}"><polyline points="{path}" fill="none" '
            f'stroke="{color}" stroke-width="2"/>'
        )
        if len(pts) <= 40:
            for x, y in pts:
                parts.append(
                    f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}">'
                    f"<title>{escape(name)}: {_fmt(y, percent)} at {_fmt(x, False)}</title></circle>"
                )
        parts.append("</g>")
        if len(series) > 1:
            parts.append(
                f'<rect x="{legend_x}" y="{top + 6}" width="10" height="10" fill="{color}"/>'
                f'<text x="{legend_x + 14}" y="{top + 15}" class="chart-legend">{escape(name)}</text>'
            )
            legend_x += 22 + 7 * len(name)
    parts.append("</svg>")
    return mark_safe("".join(parts))
