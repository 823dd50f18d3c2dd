"""The pictures of report.html: which charts a report folder's data supports, drawn.

Statuses per region and account come from summary.json; completions, rates, throttles and
the wait by size from timeline.json (a run's time series), when the folder has one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from batchcopy import charts

__all__ = ["pictures"]


def pictures(
    summary: Mapping[str, Any],
    timeline: Mapping[str, Any] | None,
    order: Sequence[str],
    icons: Mapping[str, str],
) -> list[tuple[str, str]]:
    """(heading, SVG) for each picture the data supports: statuses from ``summary``
    (``order``: the statuses in drawing order), the rest from ``timeline`` if there is one."""
    pictures = [
        (
            "Statuses by region",
            charts.stacked_bars(
                ident="by-region",
                title="Jobs by status in each region",
                rows=summary.get("by_region") or {},
                order=order,
                icons=icons,
            ),
        )
    ]
    by_account = summary.get("by_account") or {}
    if len(by_account) > 1:
        pictures.append(
            (
                "Statuses by account",
                charts.stacked_bars(
                    ident="by-account",
                    title="Jobs by status in each account",
                    rows=by_account,
                    order=order,
                    icons=icons,
                ),
            )
        )
    if timeline is None:
        return pictures
    step = float(timeline.get("bucket_seconds") or 1.0)
    regions = timeline.get("regions") or {}
    if regions:
        done = {r: charts.cumulative(s.get("completed", [])) for r, s in regions.items()}
        pictures.append(
            (
                "Completed over time",
                charts.line_chart(
                    ident="completed",
                    title="Jobs completed over time, per target region (running total)",
                    series=done,
                    step=step,
                    unit="jobs",
                ),
            )
        )
        for number, (region, series) in enumerate(sorted(regions.items())):
            sent = _per_second(series.get("requests", []), step)
            throttled = _per_second(series.get("throttled", []), step)
            # The rate is batchcopy's own pacing: unthrottled, it climbs to --max-rate, far
            # above what was sent; the chart's top follows what was sent, and clips the rate.
            busiest = max([v for v in sent + throttled if v is not None] or [0.0])
            rates = charts.clean(series.get("rate", []))
            top = charts.nice_ceiling(2 * busiest) if busiest else None
            label = "batchcopy's rate (req/s)"
            if top is not None and any(r is not None and r > top for r in rates):
                rates = [min(r, top) if r is not None else None for r in rates]
                label = f"batchcopy's rate (req/s; clipped at {top:g})"
            pictures.append(
                (
                    f"Request rate in {region}",
                    charts.line_chart(
                        ident=f"rate-{number}",
                        title=f"{region}: the rate batchcopy paced at, writes sent and throttled",
                        series={label: rates, "sent (writes/s)": sent},
                        step=step,
                        unit="req/s",
                        how="mean",
                        bars=throttled,
                        bars_label="throttled (writes/s)",
                    ),
                )
            )
    accounts = timeline.get("accounts") or {}
    if len(accounts) > 1:
        pictures.append(
            (
                "Completed over time by account",
                charts.line_chart(
                    ident="completed-accounts",
                    title="Jobs completed over time, per account (running total)",
                    series={
                        a: charts.cumulative(s.get("completed", [])) for a, s in accounts.items()
                    },
                    step=step,
                    unit="jobs",
                ),
            )
        )
    by_size = (timeline.get("wait") or {}).get("by_size") or []
    if by_size:
        groups = [
            (
                f"≤ {entry.get('size_gb_max')} GB ({entry.get('count', 0)})",
                {k[:-2]: entry[k] for k in ("p50_s", "p90_s", "max_s") if k in entry},
            )
            for entry in by_size
        ]
        pictures.append(
            (
                "Time to finish by size",
                charts.bar_groups(
                    ident="wait",
                    title="How long copies took to finish, by snapshot size (count)",
                    groups=groups,
                    unit="s",
                ),
            )
        )
    return pictures


def _per_second(counts: Sequence[float | None], step: float) -> list[float | None]:
    """Counts per bucket of ``step`` seconds as rates (gaps stay gaps)."""
    return [v / step if v is not None else None for v in charts.clean(counts)]
