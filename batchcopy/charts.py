"""Charts for report.html as inline SVG text: lines over time, grouped bars, stacked bars.

Drawn here, in Python, so the page needs no script library and no network to show them, and
tests can read the plotted values back. Every chart is an ``<svg role="img">`` with a title
and a description that says in words what it shows; series differ by dash pattern as well
as by colour, and colours come from CSS classes, so the page's light and dark themes apply.
Names (regions, accounts) are escaped: they come from users' manifests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

__all__ = [
    "MAX_POINTS",
    "Plot",
    "bar_groups",
    "clean",
    "cumulative",
    "line_chart",
    "nice_ceiling",
    "stacked_bars",
]

MAX_POINTS = 600  # points per line at most: a day of 1 s buckets still draws at once
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4")


@dataclass(frozen=True, slots=True, kw_only=True)
class Plot:
    """A chart's drawing area inside its viewBox; values map linearly onto it."""

    width: int = 640
    height: int = 200
    left: int = 52
    right: int = 12
    top: int = 12
    bottom: int = 30

    @property
    def inner_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def inner_height(self) -> int:
        return self.height - self.top - self.bottom

    def x(self, index: float, count: int) -> float:
        return self.left + (index / max(1, count - 1)) * self.inner_width

    def y(self, value: float, ymax: float) -> float:
        return self.top + self.inner_height * (1 - value / ymax)


PLOT = Plot()


def clean(values: Sequence[float | None]) -> list[float | None]:
    """``values`` with NaN, infinities and non-numbers as gaps (None): they cannot be drawn."""
    out: list[float | None] = []
    for value in values:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        out.append(float(value) if ok and math.isfinite(value) else None)  # type: ignore[arg-type]
    return out


def cumulative(values: Sequence[float | None]) -> list[float]:
    """Running totals; a gap counts as nothing."""
    total, out = 0.0, []
    for value in clean(values):
        total += value or 0.0
        out.append(total)
    return out


def nice_ceiling(value: float) -> float:
    """A round axis top at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _thin(values: list[float | None], how: str) -> tuple[list[float | None], int]:
    """At most MAX_POINTS values: groups of ``factor`` summed ("sum"), averaged ("mean")
    or their last ("last"); returns the values and the factor."""
    factor = max(1, math.ceil(len(values) / MAX_POINTS))
    if factor == 1:
        return values, 1
    out: list[float | None] = []
    for start in range(0, len(values), factor):
        group = [v for v in values[start : start + factor] if v is not None]
        if not group:
            out.append(None)
        elif how == "sum":
            out.append(sum(group))
        elif how == "mean":
            out.append(sum(group) / len(group))
        else:
            out.append(group[-1])
    return out, factor


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f} s"  # a short run's ticks: 0 s, 0.5 s, 1 s, not 0 s, 0 s, 1 s
    return f"{seconds:.0f} s"


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:.2g}"


def _open(ident: str, title: str, desc: str, plot: Plot, extra: str = "") -> list[str]:
    return [
        f'<svg class="chart" role="img" viewBox="0 0 {plot.width} {plot.height}" '
        f'aria-labelledby="{ident}-t {ident}-d"{extra}>',
        f'<title id="{ident}-t">{escape(title)}</title>',
        f'<desc id="{ident}-d">{escape(desc)}</desc>',
    ]


def line_chart(
    *,
    ident: str,
    title: str,
    series: Mapping[str, Sequence[float | None]],
    step: float,
    unit: str,
    how: str = "last",
    bars: Sequence[float | None] = (),
    bars_label: str = "",
) -> str:
    """Lines over time, one per series (``step`` seconds apart), with optional bars below
    (counts per step, drawn on the same axis). ``how`` thins long series ("last" for
    totals, "mean" for rates, "sum" for counts). Empty data gives a chart saying so."""
    thinned = {name: _thin(clean(values), how) for name, values in series.items()}
    thin_bars, _ = _thin(clean(bars), "sum")
    factor = max([f for _, f in thinned.values()] or [1])
    count = max([len(v) for v, _ in thinned.values()] + [len(thin_bars)] + [0])
    drawn = [v for values, _ in thinned.values() for v in values if v is not None]
    drawn += [v for v in thin_bars if v is not None]
    if not count or not drawn:
        return _empty(ident, title)
    ymax = nice_ceiling(max(drawn))
    span = step * factor * max(1, count - 1)
    finals = "; ".join(
        f"{name}: last {_number(next((v for v in reversed(vs) if v is not None), 0.0))} {unit}"
        for name, (vs, _) in thinned.items()
    )
    desc = f"{title}, over {_duration(span)}. {finals}."
    extra = f' data-ymax="{ymax:g}" data-step="{step * factor:g}"'
    parts = _open(ident, title, desc, PLOT, extra)
    parts += _axes(ymax, span, unit)
    if bars_label:
        width = max(1.0, PLOT.inner_width / max(1, count) * 0.8)
        for index, value in enumerate(thin_bars):
            if value:
                x, y = PLOT.x(index, count), PLOT.y(value, ymax)
                base = PLOT.y(0, ymax)
                parts.append(
                    f'<rect class="bar" x="{x - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" '
                    f'height="{base - y:.1f}"><title>{escape(bars_label)}: {_number(value)}'
                    "</title></rect>"
                )
    for number, (name, (values, _)) in enumerate(thinned.items()):
        dash = DASHES[number % len(DASHES)]
        for run in _runs(values, count, ymax):
            if " " not in run:  # one point (a run of one bucket): a dot, as no line is drawn
                cx, cy = run.split(",")
                parts.append(
                    f'<circle class="dot c{number % 8}" data-series="{escape(name)}" cx="{cx}" '
                    f'cy="{cy}" r="3"><title>{escape(name)}</title></circle>'
                )
                continue
            parts.append(
                f'<polyline class="line c{number % 8}" data-series="{escape(name)}" '
                f'stroke-dasharray="{dash}" points="{run}"><title>{escape(name)}</title>'
                "</polyline>"
            )
    parts.append("</svg>")
    legend = [
        f'<li><svg class="key" viewBox="0 0 24 8" aria-hidden="true"><line class="line '
        f'c{n % 8}" stroke-dasharray="{DASHES[n % len(DASHES)]}" x1="0" y1="4" x2="24" y2="4"/>'
        f"</svg>{escape(name)}</li>"
        for n, name in enumerate(thinned)
    ]
    if bars_label:
        legend.append(
            '<li><svg class="key" viewBox="0 0 24 8" aria-hidden="true"><rect class="bar" '
            f'x="6" y="0" width="12" height="8"/></svg>{escape(bars_label)}</li>'
        )
    return "".join(parts) + f'<ul class="legend">{"".join(legend)}</ul>'


def _runs(values: Sequence[float | None], count: int, ymax: float) -> list[str]:
    """The points of each unbroken stretch of ``values`` (a gap breaks the line)."""
    runs: list[str] = []
    points: list[str] = []
    for index, value in enumerate(values):
        if value is None:
            if points:
                runs.append(" ".join(points))
            points = []
            continue
        points.append(f"{PLOT.x(index, count):.1f},{PLOT.y(value, ymax):.1f}")
    if points:
        runs.append(" ".join(points))
    return runs


def _axes(ymax: float, span: float, unit: str) -> list[str]:
    parts = []
    for fraction in (0, 0.5, 1):
        y = PLOT.y(ymax * fraction, ymax)
        parts.append(
            f'<line class="grid" x1="{PLOT.left}" x2="{PLOT.width - PLOT.right}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{PLOT.left - 4}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_number(ymax * fraction)}</text>"
        )
    bottom = PLOT.height - PLOT.bottom
    for fraction, anchor in ((0, "start"), (0.5, "middle"), (1, "end")):
        x = PLOT.left + PLOT.inner_width * fraction
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="{anchor}">'
            f"{_duration(span * fraction)}</text>"
        )
    parts.append(
        f'<text class="tick" x="4" y="{PLOT.top - 2}" text-anchor="start">{escape(unit)}</text>'
    )
    return parts


def bar_groups(
    *, ident: str, title: str, groups: Sequence[tuple[str, Mapping[str, float]]], unit: str
) -> str:
    """Horizontal bars, a group per label (``groups``: label -> measure -> value), each bar
    labelled with its measure and value in text."""
    rows = [
        (label, {k: v for k, v in m.items() if clean([v])[0] is not None}) for label, m in groups
    ]
    rows = [(label, measures) for label, measures in rows if measures]
    if not rows:
        return _empty(ident, title)
    top = nice_ceiling(max(v for _, m in rows for v in m.values()))
    bar, gap, left, right = 14, 10, 110, 150
    per_group = max(len(m) for _, m in rows) * bar + gap
    plot = Plot(height=len(rows) * per_group + 10, left=left, right=right, top=4, bottom=6)
    desc = "; ".join(
        f"{label}: " + ", ".join(f"{k} {_number(v)} {unit}" for k, v in m.items())
        for label, m in rows
    )
    parts = _open(ident, title, desc, plot, f' data-xmax="{top:g}"')
    for number, (label, measures) in enumerate(rows):
        y0 = plot.top + number * per_group
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{y0 + bar - 3}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        for index, (name, value) in enumerate(measures.items()):
            y = y0 + index * bar
            width = plot.inner_width * value / top
            parts.append(
                f'<rect class="bar m{index % 4}" x="{left}" y="{y}" width="{width:.1f}" '
                f'height="{bar - 2}" data-value="{value:g}"><title>{escape(label)} {escape(name)}'
                f": {_number(value)} {escape(unit)}</title></rect>"
                f'<text class="tick" x="{left + width + 4:.1f}" y="{y + bar - 4}">'
                f"{escape(name)} {_number(value)} {escape(unit)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def stacked_bars(
    *,
    ident: str,
    title: str,
    rows: Mapping[str, Mapping[str, int]],
    order: Sequence[str],
    icons: Mapping[str, str],
) -> str:
    """One bar per row (a region, an account) split by status in ``order``, each followed
    by its counts in words and icons, so no colour is needed to read it."""
    rows = {label: counts for label, counts in rows.items() if sum(counts.values())}
    if not rows:
        return _empty(ident, title)
    line = 34
    plot = Plot(height=len(rows) * line + 6, left=130, right=10, top=4, bottom=2)
    desc = "; ".join(
        f"{label}: " + ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s))
        for label, counts in rows.items()
    )
    parts = _open(ident, title, desc, plot)
    for number, (label, counts) in enumerate(rows.items()):
        y = plot.top + number * line
        total = sum(counts.values())
        parts.append(
            f'<text class="tick" x="{plot.left - 6}" y="{y + 12}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        x = float(plot.left)
        for status in order:
            if not counts.get(status):
                continue
            width = plot.inner_width * counts[status] / total
            parts.append(
                f'<rect class="st st-{escape(status)}" x="{x:.1f}" y="{y}" width="{width:.1f}" '
                f'height="14" data-status="{escape(status)}" data-count="{counts[status]}">'
                f"<title>{escape(label)}: {counts[status]} {escape(status)}</title></rect>"
            )
            x += width
        words = ", ".join(
            f"{icons.get(s, '')} {counts[s]} {s.replace('_', ' ')}" for s in order if counts.get(s)
        )
        parts.append(f'<text class="tick" x="{plot.left}" y="{y + 27}">{escape(words)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _empty(ident: str, title: str) -> str:
    plot = Plot(height=40)
    parts = _open(ident, title, "No data to draw.", plot)
    parts.append(f'<text class="tick" x="{plot.left}" y="24">No data to draw.</text></svg>')
    return "".join(parts)
