"""Small inline SVG line charts (no script, no external resource), for rates over the last minutes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 120, 24


def sparkline(values: Sequence[float], *, label: str, unit: str = "/s", width: int = WIDTH, height: int = HEIGHT) -> str:
    """An ``<svg>`` drawing ``values`` (oldest first) scaled from 0 to their maximum; NaN values are
    gaps. ``label`` names the series in the chart's ``<title>`` (shown on hover and read by screen
    readers) with the newest value and the maximum in ``unit``. A single value draws a level
    line at its height; none, a flat line at 0."""
    finite = [v for v in values if not math.isnan(v)]
    top = max(finite, default=0.0)
    newest = next((v for v in reversed(values) if not math.isnan(v)), None)
    title = f"{label}: " + ("no data yet" if newest is None else f"now {_figure(newest)}{unit}, max {_figure(top)}{unit}")
    step = width / max(1, len(values) - 1)
    lines, current = [], []
    for i, value in enumerate(values):
        if math.isnan(value):
            if current:
                lines.append(current)
            current = []
            continue
        y = height - 1 - (value / top * (height - 2) if top > 0 else 0.0)
        current.append(f"{i * step:.1f},{y:.1f}")
    if current:
        lines.append(current)
    if len(values) < 2:  # one interval (or none) yet: a level line at its value
        y = current[0].split(",")[1] if lines and current else f"{height - 1}"
        lines = [[f"0,{y}", f"{width},{y}"]]
    paths = "".join(f'<polyline points="{" ".join(points)}"/>' for points in lines if len(points) > 1)
    dots = "".join(f'<circle cx="{p[0].split(",")[0]}" cy="{p[0].split(",")[1]}" r="1.5"/>' for p in lines if len(p) == 1)
    return (f'<svg class="spark" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{paths}{dots}</svg>')  # fmt: skip


def _figure(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.2g}"
