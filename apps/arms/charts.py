"""The arms chart, drawn on the server as inline SVG in the house style (`apps.training.charts`): per query kind, each
arm's change in strict pass@1 against the round's input policy, a point with its 95% paired bootstrap interval."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from apps.training.charts import PALETTE, _ticks, svg_head


def interval_chart(
    groups: list[str],
    series: dict[str, dict[str, dict | None]],
    *,
    title: str,
    y_label: str,
    width: int = 760,
    height: int = 300,
    element_id: str = "",
) -> SafeString:
    """`series[name][group]` = {"diff", "low", "high"} (or None: not drawn). One band per group along x, one
    coloured point and whisker per series inside it, a line at zero."""
    points = [(g, name, iv) for name, by_group in series.items() for g, iv in by_group.items() if iv and g in groups]
    left, right, top, bottom = 56, 16, 28, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    head = svg_head(title, width, height, left, element_id)
    if not points:
        return mark_safe(
            head + f'<text x="{left}" y="{top + plot_h / 2}" class="chart-empty">no intervals yet</text></svg>'
        )
    values = [v for _, _, iv in points for v in (iv["low"], iv["high"], iv["diff"])] + [0.0]
    y_lo, y_hi = min(values), max(values)
    pad = (y_hi - y_lo) * 0.08 or 0.05
    y_lo, y_hi = y_lo - pad, y_hi + pad

    def py(y: float) -> float:
        return top + (1 - (y - y_lo) / (y_hi - y_lo)) * plot_h

    band = plot_w / len(groups)
    names = list(series)
    parts = [head, f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="chart-frame"/>']
    for tick in _ticks(y_lo, y_hi):
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{py(tick):.1f}" y2="{py(tick):.1f}" '
            f'class="chart-grid"/><text x="{left - 6}" y="{py(tick) + 4:.1f}" class="chart-axis" '
            f'text-anchor="end">{tick * 100:+.0f}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{py(0):.1f}" y2="{py(0):.1f}" stroke="#495057" stroke-width="1"/>'
    )
    for i, group in enumerate(groups):
        parts.append(
            f'<text x="{left + band * (i + 0.5):.1f}" y="{top + plot_h + 16}" class="chart-axis" '
            f'text-anchor="middle">{escape(group)}</text>'
        )
    for g, name, iv in points:
        i, j = groups.index(g), names.index(name)
        x = left + band * i + band * (j + 1) / (len(names) + 1)
        color = PALETTE[j % len(PALETTE)]
        label = f"{name}, {g}: {iv['diff'] * 100:+.1f} points [{iv['low'] * 100:+.1f}, {iv['high'] * 100:+.1f}]"
        parts.append(
            f'<g class="interval" data-arm="{escape(name)}" data-kind="{escape(g)}">'
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{py(iv["low"]):.1f}" y2="{py(iv["high"]):.1f}" '
            f'stroke="{color}" stroke-width="2"/>'
            f'<circle cx="{x:.1f}" cy="{py(iv["diff"]):.1f}" r="3.5" fill="{color}">'
            f"<title>{escape(label)}</title></circle></g>"
        )
    parts.append(
        f'<text x="14" y="{top + plot_h / 2}" class="chart-label" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>'
    )
    legend_x = left + 8
    for j, name in enumerate(names):
        parts.append(
            f'<rect x="{legend_x}" y="{height - 22}" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>'
            f'<text x="{legend_x + 14}" y="{height - 13}" class="chart-legend">{escape(name)}</text>'
        )
        legend_x += 22 + 7 * len(name)
    parts.append("</svg>")
    return mark_safe("".join(parts))
