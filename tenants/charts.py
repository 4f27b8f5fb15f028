"""Server-side SVG charts for the health pages: no JavaScript, no CDN.

A chart is lines (or areas) over a time window, with a unit on its axis, a gap wherever a
period has no datapoint (never a line drawn across it) and a dashed marker at each
deployment. The output is one self-contained ``<figure>``: inline presentation attributes
draw it even without a stylesheet; ``static/css/health.css`` only arranges the figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#2f5bd3", "#b42318", "#a86a00", "#1d7a46", "#7a3fb8")
_GRID = "#e2e5ea"
_INK = "#6b7383"
_MARKER = "#7a3fb8"


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[int, float]]  # (epoch seconds at the period's start, value)
    color: str = ""
    area: bool = False
    dashed: bool = False


@dataclass(frozen=True)
class Marker:
    at: int  # epoch seconds
    label: str


def format_value(value: float | None, unit: str) -> str:
    """A number with its unit, short enough for an axis."""
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value / 1000:.1f} s" if abs(value) >= 1000 else f"{value:.0f} ms"
    if unit == "percent":
        return f"{value:.1f}%" if 0 < abs(value) < 10 else f"{value:.0f}%"
    if unit == "bytes":
        for suffix, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if abs(value) >= size:
                return f"{value / size:.1f} {suffix}"
        return f"{value:.0f} B"
    if unit == "acu":
        return f"{value:.1f} ACU"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.1f}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:.1f}k"
    if value != int(value) and abs(value) < 10:
        return f"{value:.1f}"
    return f"{value:.0f}"


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n at or above ``value`` (1 for nothing)."""
    if value <= 0 or math.isnan(value):
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value * (1 - 1e-9):
            return float(candidate)
    return float(10 ** (exponent + 1))


def runs(points: Sequence[tuple[int, float]], period: int) -> list[list[tuple[int, float]]]:
    """The points cut wherever a period (or more) has no datapoint."""
    out: list[list[tuple[int, float]]] = []
    last: int | None = None
    for t, v in sorted(points):
        if last is None or t - last > period * 1.5:
            out.append([])
        out[-1].append((t, v))
        last = t
    return out


def _time_label(ts: int, span: int) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%H:%M") if span <= 2 * 86400 else moment.strftime("%b %d")


def time_chart(
    *,
    title: str,
    unit: str,
    series: Sequence[Series],
    start: int,
    end: int,
    period: int,
    markers: Sequence[Marker] = (),
    note: str = "",
    width: int = 520,
    height: int = 150,
) -> SafeString:
    left, right, top, bottom = 52, 10, 8, 20
    plot_w, plot_h = width - left - right, height - top - bottom
    span = max(end - start, 1)
    values = [v for s in series for _, v in s.points if v is not None]
    y_max = nice_ceiling(max(values) if values else 0)

    def x(t: float) -> float:
        return round(left + (t - start) / span * plot_w, 1)

    def y(v: float) -> float:
        return round(top + plot_h - (v / y_max) * plot_h, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" '
        f'aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="10">'
    ]
    for fraction in (0, 0.5, 1):
        gy = y(y_max * fraction)
        parts.append(
            f'<line x1="{left}" y1="{gy}" x2="{width - right}" y2="{gy}" stroke="{_GRID}"/>'
            f'<text x="{left - 4}" y="{gy + 3}" text-anchor="end" fill="{_INK}">'
            f"{escape(format_value(y_max * fraction, unit))}</text>"
        )
    for t, anchor in ((start, "start"), (start + span // 2, "middle"), (end, "end")):
        parts.append(
            f'<text x="{x(t)}" y="{height - 5}" text-anchor="{anchor}" fill="{_INK}">'
            f"{_time_label(t, span)}</text>"
        )
    for marker in markers:
        if start <= marker.at <= end:
            mx = x(marker.at)
            parts.append(
                f'<g class="deploy-marker"><title>{escape(marker.label)}</title>'
                f'<line x1="{mx}" y1="{top}" x2="{mx}" y2="{top + plot_h}" stroke="{_MARKER}" '
                f'stroke-dasharray="3 3"/>'
                f'<path d="M{mx - 4} {top} L{mx + 4} {top} L{mx} {top + 6} Z" '
                f'fill="{_MARKER}"/></g>'
            )
    base = y(0)
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        for run in runs([(t, v) for t, v in s.points if v is not None], period):
            coords = " ".join(f"{x(t)},{y(v)}" for t, v in run)
            if len(run) == 1:
                t, v = run[0]
                parts.append(f'<circle cx="{x(t)}" cy="{y(v)}" r="2" fill="{color}"/>')
                continue
            if s.area:
                parts.append(
                    f'<polygon points="{x(run[0][0])},{base} {coords} {x(run[-1][0])},{base}" '
                    f'fill="{color}" fill-opacity="0.15" stroke="none"/>'
                )
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{color}" '
                f'stroke-width="1.5"{dash}/>'
            )
    if not values:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" '
            f'fill="{_INK}" font-size="12">No data in this range</text>'
        )
    parts.append("</svg>")

    legend = []
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        latest = next((v for _, v in sorted(s.points, reverse=True) if v is not None), None)
        legend.append(
            # An SVG swatch: a style attribute would need 'unsafe-inline' in the CSP.
            f'<span class="legend-item"><svg class="swatch" width="10" height="3" '
            f'aria-hidden="true"><rect width="10" height="3" fill="{color}"/></svg> '
            f'{escape(s.label)} <span class="muted">{escape(format_value(latest, unit))}'
            f"</span></span>"
        )
    caption = (
        f"<figcaption><strong>{escape(title)}</strong> "
        f'<span class="legend">{" ".join(legend)}</span>'
        + (f' <span class="chart-note">{escape(note)}</span>' if note else "")
        + "</figcaption>"
    )
    return mark_safe(  # noqa: S308 - every text above went through escape()
        f'<figure class="chart">{caption}{"".join(parts)}</figure>'
    )
