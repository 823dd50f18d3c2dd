"""What commands print: the plan and the run's summary, as tables or JSON, and the consoles
they are printed with (never wrapped when not a terminal)."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import TYPE_CHECKING

import typer

from batchcopy.jobs import Status, lane_parts, rates_by_region

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.console import Console
    from rich.table import Table

    from batchcopy.manifest import Manifest
    from batchcopy.plan import Plan
    from batchcopy.report import Summary


def _plural(count: int, word: str, plural: str = "") -> str:
    """``1 job``, ``2 jobs``; ``plural`` for words that take more than an s."""
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _print_plan(manifest: Manifest, made: Plan, *, as_json: bool) -> None:
    from batchcopy.plan import GB_MONTH_USD

    if as_json:
        typer.echo(json.dumps({"manifest": manifest.name, **made.to_json()}, indent=2))
    else:
        from rich.table import Table

        table = Table()
        for column in ("target region", "copies", "GB", "$ / month"):
            table.add_column(column, justify="left" if column == "target region" else "right")
        for region, count in sorted(made.per_region.items()):
            gb = made.gigabytes[region]
            table.add_row(region, str(count), str(gb), f"{gb * GB_MONTH_USD:.2f}")
        console = _console()
        console.print(f"Plan for {manifest.name}: nothing was copied.")
        if made.per_region:  # no copy to make: no table of none
            console.print(table)
        unknown = f" ({made.unknown_size} of unknown size)" if made.unknown_size else ""
        copies = _plural(sum(made.per_region.values()), "copy", "copies")
        problems = _plural(len(made.problems) + made.more_problems, "problem")
        copying = f" ({made.copying} still being copied)" if made.copying else ""
        console.print(
            f"{copies}, {made.total_gb} GB{unknown}, about "
            f"${made.monthly_cost:.2f} a month more in snapshot storage; "
            f"{made.skipped} already there{copying}; {problems}."
        )
        from batchcopy.logs import say

        for problem in made.problems:
            say(f"{manifest.name}:{problem}", level="warning")
        if made.more_problems:
            say(f"... and {_plural(made.more_problems, 'more problem')}", level="warning")


def _print_summary(summary: Summary, *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2))
    else:
        from rich.table import Table

        table = Table()
        statuses = [s for s, n in summary.counts.items() if n]
        table.add_column("target region")
        for status in statuses:
            table.add_column(status, justify="right")
        for region, counts in summary.by_region.items():
            table.add_row(region, *(str(counts.get(s, 0)) for s in statuses))
        table.add_row("all", *(str(summary.counts[s]) for s in statuses), style="bold")
        console = _console()
        jobs = _plural(summary.total, "job")
        console.print(f"{summary.manifest}: {jobs} in {summary.duration:.1f} s")
        console.print(table)
        if summary.by_account:
            console.print(_accounts_table(summary.by_account, statuses))
        if summary.start_rates:
            console.print(f"Rates at the start: {_start_rates(summary)}", highlight=False)
        if summary.rates:
            per_region = rates_by_region(summary.rates)
            rates = ", ".join(f"{r} {v:g}/s" for r, v in per_region.items())
            console.print(f"Rates at the end: {rates}", highlight=False)
        # A run that finished nothing (stopped at once) has no rate to speak of.
        speed = f"; {summary.jobs_per_second:.1f} jobs/s" if summary.finished else ""
        console.print(
            f"{_plural(summary.attempts, 'copy request')}, {summary.throttles} throttled, "
            f"{summary.reconciled} reconciled after lost answers{speed}. "
            f"Run {summary.run_id}, report: {summary.report_dir}",
            highlight=False,
        )
        others = {a: n for a, n in summary.throttled_by_action.items() if a != "CopySnapshot"}
        if others:
            shown = ", ".join(f"{action} {n}" for action, n in others.items())
            console.print(f"Other requests throttled: {shown}.", highlight=False)
        if summary.tag_failures:
            # The table shows these as started or skipped: say why the run exits 1.
            copies = _plural(summary.tag_failures, "copy", "copies")
            console.print(
                f"{copies} could not be tagged (tag_error in the results; the copies stand): "
                f"run again with --resume {summary.report_dir} to tag them.",
                highlight=False,
            )


# Why a lane started at its rate, as the user knows it.
_WHY = {"remembered": "remembered", "rate": "--rate", "default": "default"}


def _start_rates(summary: Summary) -> str:
    """Each target region's starting rate (summed over its accounts' lanes, if more than
    one, saying how many) and why."""
    rates = {lane: float(start["rate"]) for lane, start in summary.start_rates.items()}
    why: dict[str, set[str]] = {}
    lanes: Counter[str] = Counter()
    for lane, start in summary.start_rates.items():
        region = lane_parts(lane)[1]
        why.setdefault(region, set()).add(_WHY.get(str(start["source"]), "?"))
        lanes[region] += 1
    return ", ".join(
        f"{region} {rate:g}/s"
        + (f" over {lanes[region]} accounts" if lanes[region] > 1 else "")
        + f" ({', '.join(sorted(why[region]))})"
        for region, rate in rates_by_region(rates).items()
    )


ACCOUNTS_SHOWN = 10  # accounts listed one by one at the end of a run; the rest are summed


def _accounts_table(by_account: Mapping[str, Mapping[str, int]], statuses: list[str]) -> Table:
    """Results by account, the ones with the most jobs not done well first; past
    ACCOUNTS_SHOWN the rest in one row, so 500 accounts still read at a glance."""
    from rich.table import Table

    def trouble(counts: Mapping[str, int]) -> int:
        return sum(n for status, n in counts.items() if not Status(status).ok)

    ranked = sorted(by_account.items(), key=lambda item: (-trouble(item[1]), item[0]))
    table = Table()
    table.add_column("account")
    for status in statuses:
        table.add_column(status, justify="right")
    for account, counts in ranked[:ACCOUNTS_SHOWN]:
        table.add_row(account, *(str(counts.get(s, 0)) for s in statuses))
    if rest := ranked[ACCOUNTS_SHOWN:]:
        summed = {s: sum(c.get(s, 0) for _, c in rest) for s in statuses}
        label = f"{len(rest)} other account{'s' if len(rest) > 1 else ''}"
        table.add_row(label, *(str(summed[s]) for s in statuses), style="dim")
    return table


# Wide enough that no line a run prints is wrapped when it goes to a log or cron mail.
UNWRAPPED_WIDTH = 10_000


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    console = Console(stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)
    if not console.is_terminal:
        console.width = UNWRAPPED_WIDTH
    if not stderr:
        # rich exits 1 by itself when stdout's reader goes away; _stdout_may_close decides.
        console.on_broken_pipe = _broken_pipe  # type: ignore[method-assign]
    return console


def _broken_pipe() -> None:
    raise BrokenPipeError
