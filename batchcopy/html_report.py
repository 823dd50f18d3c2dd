"""report.html: one self-contained page for a report folder, readable with no network.

It reads what a run or prune left in its folder (summary.json, results.jsonl, timeline.json
when there is one) and writes ``report.html`` beside them, atomically. The page is rendered
by Jinja2 with autoescaping; the charts are inline SVG drawn by :mod:`batchcopy.charts`; the
rows travel as one compact JSON array of arrays inside a ``<script type="application/json">``
and a short inline script pages, filters and searches them, setting text only, never HTML
(names and servers' error messages are not ours to trust). Rows that need attention come
first. Nothing on the page refers to another address: no fonts, no scripts, no images.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchcopy.advice import STATUS_FIXES, fix_for
from batchcopy.errors import ReportDirError
from batchcopy.html_pictures import pictures
from batchcopy.jobs import BASE_ACCOUNT

__all__ = ["MAX_ROWS", "html_report_or_warn", "render_html", "write_html_report"]

log = logging.getLogger("batchcopy")

# Rows embedded at most (those needing attention first): a page far past this would not
# open on a laptop, and drawing it holds them in memory at the end of a run (twice: those
# needing attention and the rest); results.csv holds every row.
MAX_ROWS = 100_000
PAGE_ROWS = 100

ICONS = {
    "succeeded": "✔",
    "started": "▶",
    "skipped": "↷",
    "failed": "✖",
    "not_started": "○",
    "in_progress": "◔",
    "kept": "●",
    "would_delete": "⌫",
    "deleted": "✔",
    "gone": "∅",
}
# Which rows need a look first, in this order; then the rest.
ATTENTION = ("failed", "not_started", "in_progress")
RUN_ORDER = ("failed", "not_started", "in_progress", "started", "succeeded", "skipped")
PRUNE_ORDER = ("failed", "not_started", "would_delete", "deleted", "gone", "skipped", "kept")
OK_RUN = frozenset({"started", "succeeded", "skipped"})
OK_PRUNE = frozenset({"kept", "would_delete", "deleted", "gone", "skipped"})


@dataclass(frozen=True, slots=True, kw_only=True)
class _Column:
    key: str
    label: str


RUN_COLUMNS = (
    _Column(key="line", label="Line"),
    _Column(key="status", label="Status"),
    _Column(key="target_snapshot_name", label="Target snapshot"),
    _Column(key="source", label="Source"),
    _Column(key="source_region", label="From"),
    _Column(key="target_region", label="Region"),
    _Column(key="account", label="Account"),
    _Column(key="error_code", label="Error"),
    _Column(key="error_message", label="Message"),
    _Column(key="attempts", label="Attempts"),
    _Column(key="throttles", label="Throttles"),
    _Column(key="duration", label="Seconds"),
)
PRUNE_COLUMNS = (
    _Column(key="status", label="Status"),
    _Column(key="name", label="Snapshot"),
    _Column(key="source", label="Source"),
    _Column(key="region", label="Region"),
    _Column(key="account", label="Account"),
    _Column(key="decision", label="Decision"),
    _Column(key="created_at", label="Created"),
    _Column(key="size_gb", label="GB"),
    _Column(key="error_code", label="Error"),
    _Column(key="reason", label="Message"),
)


def write_html_report(directory: Path) -> Path:
    """Write ``directory``/report.html from the report files there and return its path.

    Raises :class:`ReportDirError` when ``directory`` holds no readable summary.json."""
    from batchcopy.report import _write_atomically

    path = directory / "report.html"
    _write_atomically(path, render_html(directory))
    return path


def html_report_or_warn(directory: Path) -> Path | None:
    """:func:`write_html_report`, logging a warning instead of raising: the page is a view
    of the report, so failing to draw it must not change a run's outcome or its files."""
    try:
        return write_html_report(directory)
    except Exception as exc:
        log.warning("report.html was not written in %s: %s", directory, exc)
        return None


def render_html(directory: Path) -> str:
    """The page for the report folder ``directory``, as text."""
    summary = _read_summary(directory)
    prune = summary.get("command") == "prune"
    columns = PRUNE_COLUMNS if prune else RUN_COLUMNS
    # Over several accounts, rows naming none are the base account's, as summary.json says.
    base = BASE_ACCOUNT if summary.get("by_account") else ""
    rows, total, codes = _read_rows(directory / "results.jsonl", columns, prune=prune, base=base)
    if isinstance(summary.get("total"), int):
        total = max(total, summary["total"])  # rows lost from results.jsonl still count
    timeline, why_no_timeline = _read_timeline(directory / "timeline.json")
    order = PRUNE_ORDER if prune else RUN_ORDER
    counts = {s: int(n) for s, n in summary.get("counts", {}).items() if n}
    by_region = summary.get("by_region") or {}
    by_account = summary.get("by_account") or {}
    index = {column.key: n for n, column in enumerate(columns)}
    meta = {
        "columns": [column.label for column in columns],
        "keys": {
            "status": index["status"],
            "name": index["name" if prune else "target_snapshot_name"],
            "source": index["source"],
            "region": index["region" if prune else "target_region"],
            "account": index["account"],
            "code": index["error_code"],
            "message": index["reason" if prune else "error_message"],
        },
        "icons": ICONS,
        "fixes": {code: fix_for(code, prune=prune) for code in sorted(codes)},
        "status_fixes": {} if prune else dict(STATUS_FIXES),
        "page": PAGE_ROWS,
        "total": total,
    }
    options = {
        "status": [s for s in order if s in counts] + sorted(set(counts) - set(order)),
        "region": sorted(by_region),
        "account": sorted(by_account),
        "code": sorted(codes),
    }
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("batchcopy", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    try:
        drawn = pictures(summary, timeline, order, ICONS)
    except (ArithmeticError, AttributeError, KeyError, TypeError, ValueError) as exc:
        # A damaged timeline.json costs the pictures over time, never the page.
        drawn = pictures(summary, None, order, ICONS)
        why_no_timeline = (
            f"timeline.json cannot be drawn ({exc}); the pictures over time are left out."
        )
    template = env.get_template("report.html.j2")
    return template.render(
        kind="prune" if prune else "run",
        verdict=_verdict(summary, counts, prune=prune),
        caveats=_caveats(summary, counts, timeline, prune=prune),
        facts=_facts(summary, prune=prune),
        counts=[(s, counts[s], ICONS.get(s, "")) for s in options["status"]],
        total=total,
        shown=len(rows),
        options=options,
        pictures=drawn,
        timeline_note=why_no_timeline,
        retry=(directory / "retry.csv").is_file(),
        meta_json=_script_json(meta),
        rows_json=_script_json(rows),
        page_rows=PAGE_ROWS,
    )


def _read_summary(directory: Path) -> dict[str, Any]:
    path = directory / "summary.json"
    if not directory.is_dir():
        raise ReportDirError(f"{directory} is not a folder; give a report folder")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportDirError(
            f"{directory} is not a report folder: it has no summary.json; give the folder "
            "a run or prune wrote (--report-dir)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ReportDirError(f"{path} cannot be read ({exc}); is it a batchcopy report?") from None
    if not isinstance(summary, dict) or "counts" not in summary:
        raise ReportDirError(f"{path} is not a batchcopy summary (it has no counts)")
    return summary


def _read_rows(
    path: Path, columns: Sequence[_Column], *, prune: bool, base: str
) -> tuple[list[list[Any]], int, set[str]]:
    """The rows as arrays in ``columns`` order, those needing attention first (then by
    manifest line), at most MAX_ROWS of them; the count of all rows; the error codes."""
    rank = {status: n for n, status in enumerate(ATTENTION)}
    urgent: list[tuple[int, int, list[Any]]] = []
    rest: list[tuple[int, int, list[Any]]] = []
    total = 0
    codes: set[str] = set()
    for number, row in enumerate(_rows(path)):
        total += 1
        status = str(row.get("status", ""))
        if row.get("error_code"):
            codes.add(str(row["error_code"]))
        keep = urgent if status in rank else rest
        if len(keep) < MAX_ROWS:
            cells = [_cell(row, column.key, prune=prune, base=base) for column in columns]
            line = row["line"] if isinstance(row.get("line"), int) else number
            keep.append((rank.get(status, len(rank)), line, cells))
    urgent.sort(key=lambda item: item[:2])
    rest.sort(key=lambda item: item[1])
    chosen = [cells for *_, cells in urgent] + [cells for *_, cells in rest]
    return chosen[:MAX_ROWS], total, codes


def _rows(path: Path) -> Iterator[Mapping[str, Any]]:
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        for text in handle:
            try:
                row = json.loads(text)
            except ValueError:
                continue  # a torn last line from a crash: the rest still shows
            if isinstance(row, dict):
                yield row


def _cell(row: Mapping[str, Any], key: str, *, prune: bool, base: str) -> Any:
    if key == "source" and not prune:
        name = row.get("source_snapshot_name") or row.get("source_resource_name") or ""
        when = row.get("restore_date") or (
            "latest" if row.get("use_latest_restorable_auto_snapshot") else ""
        )
        return f"{name} ({when})" if when and not row.get("source_snapshot_name") else name
    value = row.get(key, "")
    if key == "account" and not value:
        return base
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN or an infinity from a hand-edited file: no JSON can hold it
    if key == "duration" and isinstance(value, int | float):
        return round(value, 1)
    return value if isinstance(value, int | float | str) else ("" if value is None else str(value))


def _read_timeline(path: Path) -> tuple[dict[str, Any] | None, str]:
    """timeline.json if readable, else None and one line saying why the pictures are out."""
    try:
        timeline = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, (
            "This folder has no timeline.json (an older batchcopy wrote it), "
            "so the pictures over time are left out."
        )
    except (OSError, ValueError) as exc:
        return None, f"timeline.json cannot be read ({exc}); the pictures over time are left out."
    if not isinstance(timeline, dict) or timeline.get("version") != 1:
        return None, "timeline.json is of a format this batchcopy does not know; pictures left out."
    return timeline, ""


def _verdict(
    summary: Mapping[str, Any], counts: Mapping[str, int], *, prune: bool
) -> dict[str, str]:
    exit_code = summary.get("exit_code")
    good = OK_PRUNE if prune else OK_RUN
    ok = sum(n for s, n in counts.items() if s in good)
    if exit_code == 0:
        return {"state": "succeeded", "icon": "✔", "word": "Succeeded"}
    if exit_code in (130, 143):
        return {"state": "attention", "icon": "⚠", "word": "Needs attention: interrupted"}
    if not ok and counts.get("failed"):
        return {"state": "failed", "icon": "✖", "word": "Failed"}
    return {"state": "attention", "icon": "⚠", "word": "Needs attention"}


def _facts(summary: Mapping[str, Any], *, prune: bool) -> list[tuple[str, str]]:
    started = summary.get("started_at")
    duration = summary.get("duration_seconds" if prune else "duration")
    accounts = sorted(summary.get("by_account") or {})
    facts = [
        (
            "Command",
            "prune" + ("" if summary.get("mode") == "delete" else " (plan)") if prune else "run",
        ),
        ("Exit code", str(summary.get("exit_code", "?"))),
        ("Duration", f"{float(duration):.1f} s" if isinstance(duration, int | float) else "?"),
        (
            "Started",
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
            if isinstance(started, int | float)
            else "?",
        ),
        ("Run id", str(summary.get("run_id") or "none")),
    ]
    if prune:
        facts.append(("Policy", str(summary.get("policy", ""))))
        freed = "Freed" if summary.get("mode") == "delete" else "Would free"
        facts.append((freed, f"{summary.get('freed_gb', 0)} GB"))
    else:
        facts.append(("Manifest", str(summary.get("manifest", ""))))
        facts.append(("Manifest sha256", str(summary.get("manifest_sha256", ""))[:16] + "…"))
        facts.append(("Copy requests", str(summary.get("attempts", 0))))
        facts.append(("Throttled", str(summary.get("throttles", 0))))
    facts.append(("Regions", ", ".join(sorted(summary.get("by_region") or {})) or "none"))
    facts.append(("Accounts", ", ".join(accounts) if accounts else "the base account"))
    return facts


def _caveats(
    summary: Mapping[str, Any],
    counts: Mapping[str, int],
    timeline: Mapping[str, Any] | None,
    *,
    prune: bool,
) -> list[str]:
    """What the verdict alone would leave a reader to believe wrongly."""
    said = []
    if prune and summary.get("mode") != "delete":
        said.append("A plan: nothing was deleted. `batchcopy prune` with --yes deletes it.")
    if not prune and (started := counts.get("started")):
        said.append(
            f"{started} {'copy was' if started == 1 else 'copies were'} started: Lightsail "
            "accepted them, and this run did not follow them to the end (a run with --wait "
            "does; a copy can still fail inside Lightsail)."
        )
    if not prune and (untagged := summary.get("tag_failures")):
        said.append(
            f"{untagged} {'copy' if untagged == 1 else 'copies'} could not be tagged (the "
            "tag_error column of results.csv says why): `batchcopy run MANIFEST --resume DIR` "
            "tags them, and prune never deletes an untagged copy."
        )
    earlier = (timeline or {}).get("earlier")
    if isinstance(earlier, dict) and earlier:
        done = 0
        for region in earlier.values():
            if isinstance(region, dict):
                done += sum(n for n in region.values() if isinstance(n, int))
        said.append(
            f"A resumed run: {done} jobs finished by earlier runs are in the counts and the "
            "table, not in the pictures over time (they show this process's own time)."
        )
    return said


def _script_json(value: object) -> str:
    """JSON safe inside a <script> element: no "<" or ">" or "&" can end it or open a
    comment, whatever a snapshot name or a server's message holds."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
