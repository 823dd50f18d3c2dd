"""report.html in a real browser (Debian's headless Chromium through Playwright): what the page
says matches the report files, it makes no request beyond its own file, it keeps free text as
text, and 100,000 rows open fast; and the hooks and `batchcopy report` that write it."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import playwright.sync_api as playwright_api
import pytest

from batchcopy.advice import fix_for
from batchcopy.html_report import render_html, write_html_report
from tests.helpers import GOOD_ROWS, EmulatorProcess, run_cli, write_manifest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FAST = ["--rate", "200", "--burst", "50", "--quiet"]
HOSTILE = "<img src=x onerror=alert(1)></script><script>alert(2)</script>"


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium, the distribution's (.ci/run installs it when missing). One per
    test: Playwright's sync API holds an event loop while it runs, which the async tests
    here need free."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: apt-get install chromium (as .ci/run does)")
    with playwright_api.sync_playwright() as driver:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


class Visit:
    """A page opened from file://, with every request, console error and dialog it made."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.context = browser.new_context()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("dialog", self._dialog)
        self.url = path.resolve().as_uri()
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-ready=true]")

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def table(self) -> list[list[str]]:
        """The table's rows on screen, as the cells' text."""
        return self.page.eval_on_selector_all(
            "#rows-body tr", "trs => trs.map(tr => [...tr.cells].map(c => c.textContent))"
        )

    def column(self, label: str) -> int:
        labels: list[str] = self.page.eval_on_selector_all(
            "#rows-head th", "ths => ths.map(th => th.textContent)"
        )
        return labels.index(label)

    def close(self) -> None:
        self.context.close()


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_run_with_failures_reads_the_same_in_the_browser(
    live: EmulatorProcess, tmp_path: Path, browser: Any
) -> None:
    """After a run with failures, report.html opens offline with no console error and no
    request, says "needs attention" with summary.json's numbers, and its table filtered to
    the failures (or searched by name) holds exactly results.jsonl's rows, each with a fix."""
    rows = [
        *GOOD_ROWS,
        "us-east-1,eu-west-1,does-not-exist,,,,orphan-1",
        "us-east-1,us-west-2,also-missing,,,,orphan-2",
    ]
    report = tmp_path / "r"
    done = run_cli(
        "run", str(write_manifest(tmp_path / "m.csv", rows)), "--endpoint-url", live.url,
        "--report-dir", str(report), *FAST,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    summary = json.loads((report / "summary.json").read_text())
    results = _jsonl(report / "results.jsonl")
    visit = Visit(browser, report / "report.html")
    try:
        assert visit.requests == [visit.url]
        assert visit.errors == []
        page = visit.page
        assert page.inner_text("#verdict .word") == "Needs attention"
        counts = {
            li.get_attribute("data-status"): int(li.inner_text().split()[-2])
            for li in page.query_selector_all("#counts li")
        }
        assert counts["total"] == summary["total"] == len(results)
        assert counts["failed"] == summary["counts"]["failed"] == 2
        assert counts["started"] == summary["counts"]["started"]
        assert page.inner_text("[data-fact='Exit code']") == "1"
        assert page.inner_text("[data-fact='Run id']") == summary["run_id"]
        assert page.get_attribute("#retry-link", "href") == "retry.csv"

        name, code, fix = (
            visit.column("Target snapshot"),
            visit.column("Error"),
            visit.column("Fix"),
        )
        first = visit.table()[: summary["counts"]["failed"]]
        assert {row[name] for row in first} == {"orphan-1", "orphan-2"}  # attention first

        page.select_option("#f-status", "failed")
        failed = {r["target_snapshot_name"]: r for r in results if r["status"] == "failed"}
        shown = visit.table()
        assert {row[name] for row in shown} == set(failed)
        for row in shown:
            assert row[code] == failed[row[name]]["error_code"] == "NotFoundException"
            assert row[fix] == fix_for("NotFoundException")

        page.select_option("#f-status", "")
        page.fill("#f-search", "IRELAND")
        assert [row[name] for row in visit.table()] == ["api-1-ireland"]
        page.fill("#f-search", "no such name")
        assert visit.table() == []
        assert page.inner_text("#page-info") == "No row matches the filters."

        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes().startswith(b"\x89PNG")
        assert visit.requests == [visit.url]
    finally:
        visit.close()


def _folder(
    directory: Path, rows: list[dict[str, Any]], *, timeline: dict[str, Any] | None = None
) -> Path:
    """A report folder written directly, as a run would leave it."""
    directory.mkdir()
    counts: dict[str, int] = {}
    by_region: dict[str, dict[str, int]] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        region = by_region.setdefault(row["target_region"], {})
        region[row["status"]] = region.get(row["status"], 0) + 1
    summary = {
        "format_version": 1, "run_id": "20261130T080000Z-abcdef12", "manifest": "m.csv",
        "manifest_sha256": "0" * 64, "total": len(rows), "counts": counts,
        "by_region": by_region, "by_account": {}, "attempts": len(rows), "throttles": 0,
        "started_at": 1_796_000_000.0, "finished_at": 1_796_000_060.0, "duration": 60.0,
        "exit_code": 1 if counts.get("failed") else 0,
    }  # fmt: skip
    (directory / "summary.json").write_text(json.dumps(summary))
    with (directory / "results.jsonl").open("w") as handle:
        handle.writelines(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
    if timeline is not None:
        (directory / "timeline.json").write_text(json.dumps(timeline))
    return directory


def _row(line: int, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "line": line, "source_region": "us-east-1", "target_region": "eu-west-1",
        "source_snapshot_name": f"snap-{line}", "target_snapshot_name": f"copy-{line}",
        "account": "", "status": status, "attempts": 1, "throttles": 0, "error_code": "",
        "error_message": "", "duration": 1.25, **fields,
    }  # fmt: skip


def test_names_and_server_messages_stay_text(tmp_path: Path, browser: Any) -> None:
    """A server's error message or a name holding HTML shows as those characters: no
    element is made from it, no script runs, the JSON holding it is not cut short."""
    rows = [
        _row(2, "failed", error_code="ServiceException", error_message=HOSTILE),
        _row(3, "succeeded", target_snapshot_name=HOSTILE),
    ]
    folder = _folder(tmp_path / "r", rows)
    write_html_report(folder)
    visit = Visit(browser, folder / "report.html")
    try:
        assert visit.dialogs == []
        assert visit.errors == []
        assert visit.page.query_selector_all("img") == []
        cells = [cell for row in visit.table() for cell in row]
        assert cells.count(HOSTILE) == 2
    finally:
        visit.close()


def test_a_hundred_thousand_rows_load_within_two_seconds(tmp_path: Path, browser: Any) -> None:
    """A report of 100,000 rows opens, table drawn, in under 2 s by the page's own timing."""
    statuses = ["succeeded"] * 9 + ["failed"]
    rows = [
        _row(
            n + 2,
            statuses[n % 10],
            target_region=("eu-west-1", "us-west-2", "ap-south-1")[n % 3],
            error_code="ThrottlingException" if n % 10 == 9 else "",
            error_message="Rate exceeded" if n % 10 == 9 else "",
        )
        for n in range(100_000)
    ]
    folder = _folder(tmp_path / "big", rows)
    write_html_report(folder)
    visit = Visit(browser, folder / "report.html")
    try:
        timing = visit.page.evaluate(
            """() => ({
                load: performance.getEntriesByType("navigation")[0].loadEventEnd,
                ready: performance.getEntriesByName("report-ready")[0].startTime,
            })"""
        )
        assert visit.errors == []
        assert "of 100000" in visit.page.inner_text("#page-info")
        assert len(visit.table()) == 100
        assert 0 < timing["ready"] <= timing["load"] < 2000, timing
    finally:
        visit.close()


TIMELINE = {
    "version": 1,
    "started_at": "2026-11-30T08:00:00.000Z",
    "bucket_seconds": 1.0,
    "regions": {
        "eu-west-1": {
            "completed": [0, 2, 3, 1],
            "failed": [0, 0, 1, 0],
            "requests": [4, 5, 4, 1],
            "throttled": [0, 2, 0, 0],
            "rate": [4.0, 2.5, None, 3.0],
        }
    },
    "accounts": {"111122223333": {"completed": [1, 1]}, "444455556666": {"completed": [0, 2]}},
    "wait": {
        "by_size": [{"size_gb_max": 8, "count": 12, "p50_s": 41.0, "p90_s": 80.5, "max_s": 95.0}]
    },
}


def test_timeline_pictures_appear_only_with_a_timeline(tmp_path: Path) -> None:
    """With timeline.json the page draws completions, the rate and throttles per region,
    completions per account and the wait by size; without it, it says so in one line."""
    rows = [_row(n, "succeeded") for n in range(2, 8)]
    with_it = render_html(_folder(tmp_path / "with", rows, timeline=TIMELINE))
    for ident in ("completed", "rate-0", "completed-accounts", "wait", "by-region"):
        assert f'aria-labelledby="{ident}-t {ident}-d"' in with_it
    assert "eu-west-1: last 6 jobs" in with_it  # 0+2+3+1 completions in the region
    assert 'id="timeline-note"' not in with_it
    without = render_html(_folder(tmp_path / "without", rows))
    assert "has no timeline.json" in without
    assert 'aria-labelledby="completed-t' not in without
    assert 'aria-labelledby="by-region-t' in without  # the status bars need no timeline


def test_the_verdict_says_what_it_does_not_show(tmp_path: Path) -> None:
    """Copies only started say they were not followed to the end; copies still copying at
    the wait's end (no failure) need attention, not "Failed"; untagged copies and a
    resumed run's earlier jobs are said; the fix column covers rows with no error."""
    started = render_html(_folder(tmp_path / "started", [_row(2, "started")]))
    assert "Succeeded" in started
    assert "did not follow them to the end" in started
    copying = _folder(tmp_path / "copying", [_row(2, "in_progress"), _row(3, "succeeded")])
    summary = json.loads((copying / "summary.json").read_text())
    summary.update(exit_code=1, tag_failures=1)
    (copying / "summary.json").write_text(json.dumps(summary))
    resumed = {**TIMELINE, "earlier": {"eu-west-1": {"completed": 4, "failed": 0}}}
    (copying / "timeline.json").write_text(json.dumps(resumed))
    text = render_html(copying)
    assert 'data-state="attention"' in text
    assert "1 copy could not be tagged" in text
    assert "A resumed run: 4 jobs finished by earlier runs" in text
    assert "follows it to the end without copying again" in text  # in_progress's fix


def test_a_prune_plan_says_what_would_be_freed_and_its_fixes_are_a_prunes(
    tmp_path: Path,
) -> None:
    """A prune's plan page says "Would free" and that nothing was deleted; a failed
    delete's fix is a new prune, not a retry.csv a prune never writes."""
    folder = tmp_path / "plan"
    folder.mkdir()
    summary = {
        "command": "prune", "mode": "plan", "run_id": "", "exit_code": 0, "freed_gb": 4816,
        "counts": {"would_delete": 1, "failed": 1}, "by_region": {}, "by_account": {},
    }  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    row = {"status": "failed", "name": "a", "region": "eu-west-1", "error_code": "ServiceException"}
    (folder / "results.jsonl").write_text(json.dumps(row) + "\n")
    text = render_html(folder)
    assert "Would free" in text
    assert ">Freed<" not in text
    assert "nothing was deleted" in text
    assert "a new prune (not --resume)" in text
    assert "retry.csv" not in text


def test_damaged_files_cost_their_part_of_the_page_not_the_page(tmp_path: Path) -> None:
    """A timeline.json of the wrong shapes loses only the pictures over time (said in one
    line), a NaN in a hand-edited row is shown empty (the rows stay readable JSON), and
    the total is summary.json's even when rows are missing from results.jsonl."""
    rows = [_row(2, "failed", duration=math.nan, attempts=math.inf), _row(3, "succeeded")]
    folder = _folder(tmp_path / "r", rows, timeline={**TIMELINE, "regions": [1, 2]})
    summary = json.loads((folder / "summary.json").read_text())
    summary["total"] = 5
    (folder / "summary.json").write_text(json.dumps(summary))
    text = render_html(folder)
    assert "timeline.json cannot be drawn" in text
    assert '<li data-status="total"><b>5</b> total</li>' in text
    data = re.search(r'<script type="application/json" id="report-rows">(.*?)</script>', text)
    assert data is not None
    json.loads(data.group(1), parse_constant=lambda name: pytest.fail(f"{name} in the rows"))


def test_the_page_names_no_other_address(tmp_path: Path) -> None:
    """report.html refers to no URL (no CDN, fonts or images): links are the folder's files."""
    text = render_html(_folder(tmp_path / "r", [_row(2, "failed", error_code="X")]))
    assert not re.search(r"https?:|//[a-z]", text.replace("http://www.w3.org/2000/svg", ""))
    links = re.findall(r'(?:href|src)="([^"]*)"', text)
    assert set(links) <= {"results.csv", "results.jsonl", "summary.json", "retry.csv"}


def test_report_command_writes_the_page_and_refuses_other_folders(tmp_path: Path) -> None:
    """`batchcopy report DIR` writes DIR/report.html and prints its path; a folder with no
    summary.json exits 2 saying it is not a report folder; a page it cannot write exits 1."""
    folder = _folder(tmp_path / "r", [_row(2, "succeeded")])
    done = run_cli("report", str(folder))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(folder / "report.html")
    assert "Succeeded" in (folder / "report.html").read_text()
    (tmp_path / "empty").mkdir()
    refused = run_cli("report", str(tmp_path / "empty"))
    assert refused.returncode == 2
    assert "is not a report folder" in refused.stderr
    assert not (tmp_path / "empty" / "report.html").exists()
    blocked = _folder(tmp_path / "blocked", [_row(2, "succeeded")])
    (blocked / "report.html").mkdir()  # a page that cannot be written there
    failed = run_cli("report", str(blocked))
    assert failed.returncode == 1, failed.stderr
    assert "report.html" in failed.stderr


def test_a_page_that_cannot_be_written_changes_nothing_else(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """When report.html cannot be written the run still exits 0 with its other files and
    says why in a warning."""
    report = tmp_path / "r"
    (report / "report.html").mkdir(parents=True)  # a folder in the page's place
    done = run_cli(
        "run", str(write_manifest(tmp_path / "m.csv", GOOD_ROWS[:2])), "--endpoint-url",
        live.url, "--report-dir", str(report), *FAST,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "report.html was not written" in done.stderr
    assert json.loads((report / "summary.json").read_text())["exit_code"] == 0
    assert len(_jsonl(report / "results.jsonl")) == 2


async def test_the_async_api_leaves_the_page_beside_summary_json(url: str, tmp_path: Path) -> None:
    """copy_snapshots(report_dir=...) writes report.html with the run's outcome, as the CLI."""
    from batchcopy import copy_snapshots
    from tests.helpers import manual, settings_for

    jobs = [manual(2, "eu-west-1", "aa", "web-1-snap"), manual(3, "eu-west-1", "bb", "nope")]
    report = await copy_snapshots(jobs, settings_for(url), report_dir=tmp_path / "r")
    assert report.exit_code == 1, report.summary.counts
    page = (tmp_path / "r" / "report.html").read_text()
    assert "Needs attention" in page
    assert '<li data-status="failed"><span aria-hidden="true">✖</span> <b>1</b> failed</li>' in page


@pytest.mark.parametrize(("found", "said"), [(True, ""), (False, "no browser found here")])
def test_open_hands_the_page_to_the_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, found: bool, said: str
) -> None:
    """`batchcopy report DIR --open` opens report.html's file:// address in the browser,
    and says so in one line where there is no browser (the exit code stays 0)."""
    import webbrowser

    from typer.testing import CliRunner

    from batchcopy.cli import app

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or found)
    folder = _folder(tmp_path / "r", [_row(2, "succeeded")])
    done = CliRunner().invoke(app, ["report", str(folder), "--open"])
    assert done.exit_code == 0, done.output
    assert opened == [(folder / "report.html").resolve().as_uri()]
    assert said in done.output


def test_print_hides_the_filters_and_dark_mode_changes_the_colours(
    tmp_path: Path, browser: Any
) -> None:
    """Printed, the page drops the filters and pager and says the table is partial; in the
    browser's dark mode it is drawn light on dark."""
    folder = _folder(tmp_path / "r", [_row(2, "failed", error_code="X"), _row(3, "succeeded")])
    write_html_report(folder)
    visit = Visit(browser, folder / "report.html")
    try:
        page = visit.page
        background = "getComputedStyle(document.body).backgroundColor"
        page.emulate_media(color_scheme="light")
        assert page.evaluate(background) == "rgb(255, 255, 255)"
        page.emulate_media(color_scheme="dark")
        assert page.evaluate(background) == "rgb(13, 17, 23)"
        assert page.is_visible("#filters")
        page.emulate_media(media="print")
        assert not page.is_visible("#filters")
        assert not page.is_visible("#prev")
        assert page.is_visible(".print-only")
        assert len(visit.table()) == 2
    finally:
        visit.close()


def test_filters_and_table_are_named_for_screen_readers(tmp_path: Path, browser: Any) -> None:
    """Each filter is found by its label, the table has a caption and column headers with
    scope, and statuses read as words, not only colours."""
    folder = _folder(tmp_path / "r", [_row(2, "failed", error_code="X"), _row(3, "succeeded")])
    write_html_report(folder)
    visit = Visit(browser, folder / "report.html")
    try:
        page = visit.page
        for label in ("Status", "Region", "Account", "Error code", "Search by name"):
            assert page.get_by_label(label, exact=True).count() == 1, label
        assert page.inner_text("#rows caption")
        scopes = page.eval_on_selector_all("#rows-head th", "ths => ths.map(th => th.scope)")
        assert set(scopes) == {"col"}
        statuses = [row[visit.column("Status")] for row in visit.table()]
        assert statuses == ["✖ failed", "✔ succeeded"]
        assert page.inner_text("#verdict .word") == "Needs attention"
    finally:
        visit.close()


def test_the_account_filter_finds_rows_of_the_base_account(tmp_path: Path, browser: Any) -> None:
    """In a run over several accounts, the account filter's "base" finds the rows that
    name no account, and the per-account status bars are drawn."""
    rows = [_row(2, "succeeded"), _row(3, "failed", account="111122223333", error_code="X")]
    folder = _folder(tmp_path / "r", rows)
    summary = json.loads((folder / "summary.json").read_text())
    summary["by_account"] = {"111122223333": {"failed": 1}, "base": {"succeeded": 1}}
    (folder / "summary.json").write_text(json.dumps(summary))
    write_html_report(folder)
    visit = Visit(browser, folder / "report.html")
    try:
        name = visit.column("Target snapshot")
        visit.page.select_option("#f-account", "base")
        assert [row[name] for row in visit.table()] == ["copy-2"]
        visit.page.select_option("#f-account", "111122223333")
        assert [row[name] for row in visit.table()] == ["copy-3"]
        assert visit.page.query_selector("svg[aria-labelledby='by-account-t by-account-d']")
    finally:
        visit.close()
