"""Small inline SVG charts for the dashboard, drawn here: no library, no network."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Bar", "Interval", "bars", "interval_bars", "rate_line"]

PALETTE = ("#2f6fde", "#e07b39", "#3a9d5d", "#b54a8c", "#7a6bd1", "#c9a227", "#5b8a99")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str
    color: str | None = None


def bars(items: Sequence[Bar], *, chart_id: str, width: int = 640, row: int = 26) -> str:
    """Horizontal bars, one a row, each labelled and annotated, scaled to the largest."""
    label_w, text_w = 190, 130
    plot_w = width - label_w - text_w
    height = max(row * len(items), row) + 8
    top = max((b.value for b in items), default=0) or 1
    parts = [
        f'<svg id="{chart_id}" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    if not items:
        parts.append(f'<text x="8" y="{row - 8}" class="muted">no data</text>')
    for i, bar in enumerate(items):
        y = 4 + i * row
        w = max(plot_w * bar.value / top, 1 if bar.value else 0)
        color = bar.color or PALETTE[i % len(PALETTE)]
        parts.append(
            f"<g><title>{escape(bar.label)}: {escape(bar.text)}</title>"
            f'<text x="{label_w - 8}" y="{y + row * 0.62:.1f}" text-anchor="end">'
            f"{escape(_short(bar.label, 28))}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" rx="3" '
            f'fill="{color}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + row * 0.62:.1f}">'
            f"{escape(bar.text)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Interval:
    """A rate in [0, 1] and its interval, drawn as a bar with an error bar."""

    label: str
    rate: float
    low: float
    high: float
    text: str
    color: str | None = None


def interval_bars(
    items: Sequence[Interval], *, chart_id: str, width: int = 640, row: int = 26
) -> str:
    """Horizontal bars of rates on a 0-100% axis, each with its interval as an error bar
    (a line from low to high with whiskers), labelled and annotated."""
    label_w, text_w = 190, 150
    plot_w = width - label_w - text_w
    height = max(row * len(items), row) + 24

    def x(rate: float) -> float:
        return label_w + plot_w * min(max(rate, 0.0), 1.0)

    parts = [
        f'<svg id="{chart_id}" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    bottom = height - 18
    for tick in (0.0, 0.5, 1.0):
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="4" y2="{bottom}" class="grid"/>'
            f'<text x="{x(tick):.1f}" y="{bottom + 14}" text-anchor="middle" class="muted">'
            f"{tick:.0%}</text>"
        )
    if not items:
        parts.append(f'<text x="8" y="{row - 8}" class="muted">no data</text>')
    for i, item in enumerate(items):
        y = 4 + i * row
        mid = y + row / 2
        color = item.color or PALETTE[i % len(PALETTE)]
        low, high = x(item.low), x(item.high)
        parts.append(
            f'<g class="interval"><title>{escape(item.label)}: {escape(item.text)}</title>'
            f'<text x="{label_w - 8}" y="{y + row * 0.62:.1f}" text-anchor="end">'
            f"{escape(_short(item.label, 28))}</text>"
            f'<rect x="{label_w}" y="{y + 5}" width="{max(x(item.rate) - label_w, 1):.1f}" '
            f'height="{row - 12}" rx="3" fill="{color}" opacity=".55"/>'
            f'<line class="whisker" x1="{low:.1f}" x2="{high:.1f}" y1="{mid:.1f}" '
            f'y2="{mid:.1f}" stroke="#1d2330" stroke-width="1.5"/>'
            f'<line x1="{low:.1f}" x2="{low:.1f}" y1="{mid - 5:.1f}" y2="{mid + 5:.1f}" '
            'stroke="#1d2330" stroke-width="1.5"/>'
            f'<line x1="{high:.1f}" x2="{high:.1f}" y1="{mid - 5:.1f}" y2="{mid + 5:.1f}" '
            'stroke="#1d2330" stroke-width="1.5"/>'
            f'<text x="{label_w + plot_w + 8}" y="{y + row * 0.62:.1f}">'
            f"{escape(item.text)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def rate_line(
    points: Sequence[tuple[str, float, int]],
    *,
    chart_id: str,
    ceiling: float | None,
    band: tuple[float, float] | None,
    width: int = 760,
    height: int = 240,
) -> str:
    """The escalation rate per period (label, rate, calls) as a line, with the baseline
    band shaded and the ceiling dashed; the y axis is 0-100%."""
    left, right, top, bottom = 44, 12, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(points)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n if n else 0)

    def y(rate: float) -> float:
        return top + plot_h * (1 - min(max(rate, 0.0), 1.0))

    parts = [
        f'<svg id="{chart_id}" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    parts.extend(_guides(y, left, width - right, band, ceiling))
    if not points:
        parts.append(f'<text x="{left + 8}" y="{top + 20}" class="muted">no data</text>')
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(rate):.1f}" for i, (_, rate, _) in enumerate(points)
    )
    if path:
        parts.append(f'<path class="rate" d="{path}"/>')
    step = max(1, n // 8)
    for i, (label, rate, calls) in enumerate(points):
        parts.append(
            f'<circle class="dot" cx="{x(i):.1f}" cy="{y(rate):.1f}" r="3.5">'
            f"<title>{escape(label)}: {rate:.1%} of {calls} calls</title></circle>"
        )
        if i % step == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                f'class="muted">{escape(label[-8:])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _guides(
    y: Callable[[float], float],
    left: int,
    end: int,
    band: tuple[float, float] | None,
    ceiling: float | None,
) -> list[str]:
    """The rate chart's grid lines, baseline band and ceiling, from x ``left`` to ``end``."""
    guides: list[str] = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        guides.append(
            f'<line x1="{left}" x2="{end}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'class="grid"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
            f'class="muted">{tick:.0%}</text>'
        )
    if band is not None:
        low, high = band
        guides.append(
            f'<rect class="band" x="{left}" y="{y(high):.1f}" width="{end - left}" '
            f'height="{max(y(low) - y(high), 1):.1f}"><title>baseline band {low:.0%}-{high:.0%}'
            "</title></rect>"
        )
    if ceiling is not None:
        guides.append(
            f'<line class="ceiling" x1="{left}" x2="{end}" y1="{y(ceiling):.1f}" '
            f'y2="{y(ceiling):.1f}"><title>ceiling {ceiling:.0%}</title></line>'
        )
    return guides


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]
