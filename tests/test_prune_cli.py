"""batchcopy prune from the command line, against an emulator seeded with 60 nights of copies.

The seed is tests/test_emulator_deletes.py's history (web-1's automatic snapshot and
data-1's manual one copied nightly into eu-central-1; every ninth night failed, the last
one pending) plus snapshots named exactly like those copies but without batchcopy's label.
The expectations below are written from the seed, not from batchcopy's own decisions.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchcopy.jobs import CopyJob
from batchcopy.provenance import SOURCE_TAG, source_label
from tests.helpers import EmulatorProcess, read_csv, run_cli, write_manifest
from tests.test_emulator_deletes import _NIGHTS, _history

REGION = "eu-central-1"
SIZES = {"instance": 80, "disk": 32}  # the emulator's default sizes for the seeded copies
KEEP_LAST = 3
DELETES = ("DeleteInstanceSnapshot", "DeleteDiskSnapshot")
# Named like copies batchcopy made, but without its label: never candidates.
UNLABELLED = ["web-1-2026-08-30", "web-1-2026-07-01"]


def _seed() -> dict[str, Any]:
    seed = _history()
    strangers = [{"name": name, "fromInstanceName": "web-1"} for name in UNLABELLED]
    seed["regions"][REGION]["instanceSnapshots"] += strangers
    return seed


def _expected(keep_last: int = KEEP_LAST) -> dict[str, str]:
    """Each labelled copy's plan under --keep-last N, from the seed alone: per origin the N
    newest good copies are kept, pending and failed ones skipped, every other deleted."""
    plan: dict[str, str] = {}
    for key in ("instanceSnapshots", "diskSnapshots"):
        seeded = list(_history()["regions"][REGION][key])
        good = [s["name"] for s in seeded if "state" not in s]  # seeded in creation order
        for snap in seeded:
            if "state" in snap:
                plan[snap["name"]] = "skipped"
            else:
                plan[snap["name"]] = "kept" if snap["name"] in good[-keep_last:] else "delete"
    return plan


def _size(name: str) -> int:
    return SIZES["disk"] if name.startswith("data-1") else SIZES["instance"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    seed = tmp_path_factory.mktemp("seed") / "history.json"
    seed.write_text(json.dumps(_seed()))
    process = EmulatorProcess("--seed", str(seed))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def live(server: EmulatorProcess) -> EmulatorProcess:
    """The module's emulator, back to the seeded history with counters at zero."""
    server.control("POST", "reset")
    return server


def prune(live: EmulatorProcess, *args: str, cwd: Path, **kwargs: Any) -> Any:
    return run_cli("prune", "--endpoint-url", live.url, *args, cwd=cwd, **kwargs)


def delete_requests(live: EmulatorProcess) -> dict[str, int]:
    """Delete requests the emulator received, by outcome (ok, client_error, ...)."""
    counts: dict[str, int] = {}
    for actions in live.stats()["requests"].values():
        for action in DELETES:
            for outcome, n in actions.get(action, {}).items():
                counts[outcome] = counts.get(outcome, 0) + n
    return counts


def deleted_names(live: EmulatorProcess) -> dict[str, int]:
    accepted: dict[str, int] = live.stats()["deletes_accepted"]
    return {key.removeprefix(f"{REGION}/"): n for key, n in accepted.items()}


def rows(folder: Path) -> dict[str, dict[str, Any]]:
    """The report's rows by copy name, checked to be one per candidate in both files."""
    lines = (folder / "results.jsonl").read_text().splitlines()
    jsonl = [json.loads(line) for line in lines]
    csv_rows = read_csv(folder / "results.csv")
    assert len(jsonl) == len(csv_rows) == 2 * _NIGHTS
    assert len({r["name"] for r in jsonl}) == len(jsonl)
    assert {r["name"] for r in csv_rows} == {r["name"] for r in jsonl}
    return {r["name"]: r for r in jsonl}


def to_delete() -> set[str]:
    return {name for name, plan in _expected().items() if plan == "delete"}


# -- 1. the plan -----------------------------------------------------------------------------


def test_without_yes_the_plan_is_printed_and_nothing_is_deleted(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """Without --yes: exit 0, per region each copy kept (with its rule), skipped or to be
    deleted, the gigabytes and the monthly saving; no delete request sent, no folder made."""
    done = prune(live, "--keep-last", str(KEEP_LAST), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"{REGION}: kept, skipped and would be deleted" in out
    lines = {line.split()[3]: line for line in out.splitlines() if line.count("│") > 5}
    for name, plan in _expected().items():
        line = lines[name]
        if plan == "kept":
            assert "kept" in line, line
            assert "last" in line, line
        elif plan == "delete":
            assert "would delete" in line, line
        else:
            assert "skipped" in line, line
    for name in UNLABELLED:
        assert name not in out
    gb = sum(_size(name) for name in to_delete())
    assert f"{gb} GB would be deleted (give --yes to delete): up to ${gb * 0.05:.2f} a month" in out
    assert delete_requests(live) == {}
    assert live.stats()["deletes_accepted"] == {}
    assert list(tmp_path.iterdir()) == []


def test_a_plan_writes_its_report_only_where_told(live: EmulatorProcess, tmp_path: Path) -> None:
    """A plan with --report-dir writes summary.json (mode plan), a would_delete row for
    every copy the policy does not keep, and report.html; still nothing is deleted."""
    done = prune(live, "--keep-last", str(KEEP_LAST), "--report-dir", "plan", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = rows(tmp_path / "plan")
    assert {n for n, r in got.items() if r["status"] == "would_delete"} == to_delete()
    summary = json.loads((tmp_path / "plan" / "summary.json").read_text())
    assert summary["mode"] == "plan"
    assert not (tmp_path / "plan" / "prune.jsonl").exists()
    page = (tmp_path / "plan" / "report.html").read_text()
    assert "batchcopy prune report" in page
    assert f"<b>{len(to_delete())}</b> would delete" in page
    assert delete_requests(live) == {}


# -- 2. deleting -----------------------------------------------------------------------------


def test_yes_deletes_exactly_the_plan_and_a_second_prune_nothing_more(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """--yes deletes exactly the plan's would_delete rows, once each, reports one row per
    candidate in summary.json, results.csv and results.jsonl; the same prune again deletes
    nothing more."""
    plan = prune(live, "--keep-last", str(KEEP_LAST), "--json", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    planned = {
        r["name"] for r in json.loads(plan.stdout)["results"] if r["status"] == "would_delete"
    }
    assert planned == to_delete()
    done = prune(live, "--keep-last", str(KEEP_LAST), "--yes", "--report-dir", "r", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert deleted_names(live) == dict.fromkeys(planned, 1)
    got = rows(tmp_path / "r")
    assert {n for n, r in got.items() if r["status"] == "deleted"} == planned
    for name, plan_of in _expected().items():
        want = {"delete": "deleted", "kept": "kept", "skipped": "skipped"}[plan_of]
        assert got[name]["status"] == want, name
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert (summary["mode"], summary["candidates"], summary["exit_code"]) == ("delete", 120, 0)
    assert summary["counts"]["deleted"] == len(planned)
    assert summary["freed_gb"] == sum(_size(n) for n in planned)
    assert delete_requests(live) == {"ok": len(planned)}

    again = prune(live, "--keep-last", str(KEEP_LAST), "--yes", "--report-dir", "r2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    second = json.loads((tmp_path / "r2" / "summary.json").read_text())
    assert second["counts"]["deleted"] == 0
    assert second["candidates"] == 120 - len(planned)
    assert delete_requests(live) == {"ok": len(planned)}


# -- 3. usage errors -------------------------------------------------------------------------


def _run_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "a-run"
    folder.mkdir()
    (folder / "journal.jsonl").write_text('{"type": "run", "version": 1}\n')
    (folder / "summary.json").write_text('{"command": "run"}\n')
    return folder


USAGE = {
    "no keep rule": ([], "no keep rule given"),
    "bad --keep-within": (["--keep-within", "fortnight"], "--keep-within 'fortnight'"),
    "negative count": (["--keep-daily", "-2"], "--keep-daily must be"),
    "unknown region": (["--keep-last", "1", "--region", "mars-1"], "--region 'mars-1'"),
    "resume without --yes": (["--keep-last", "1", "--resume", "r"], "give --yes"),
    "resume with scope": (
        ["--resume", "r", "--yes", "--region", REGION],
        "continues the recorded plan in its own scope",
    ),
    "run's folder": (["--keep-last", "1", "--yes", "--report-dir", "a-run"], "a run's journal"),
    "run's folder, plan": (["--keep-last", "1", "--report-dir", "a-run"], "a run's journal"),
}


@pytest.mark.parametrize("case", list(USAGE))
def test_usage_errors_exit_2_in_one_line_before_any_request(
    live: EmulatorProcess, tmp_path: Path, case: str
) -> None:
    """Each usage error exits 2 with one line naming the problem, and no request at all
    reaches the emulator; a run's report folder is left exactly as it was."""
    (tmp_path / "r").mkdir()
    run_folder = _run_folder(tmp_path)
    before = {p.name: p.read_text() for p in run_folder.iterdir()}
    args, message = USAGE[case]
    done = prune(live, *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("batchcopy prune: ")
    assert message in lines[0]
    assert live.stats()["requests_total"] == 0
    assert {p.name: p.read_text() for p in run_folder.iterdir()} == before


def test_a_bad_manifest_row_is_named_and_nothing_is_sent(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """A --manifest with a bad row exits 2 naming FILE:LINE, says nothing was deleted (not
    copied), and sends no request."""
    manifest = write_manifest(
        tmp_path / "nightly.csv",
        ["us-east-1,eu-central-1,,web-1,,true,web-1-tonight", "mars-1,eu-central-1,x-1,,,,y-1"],
    )
    done = prune(live, "--keep-last", "1", "--manifest", str(manifest), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{manifest}:3: source_region" in done.stderr
    assert "nothing was deleted" in done.stderr
    assert "copied" not in done.stderr
    assert live.stats()["requests_total"] == 0


# -- 4. --json -------------------------------------------------------------------------------


def test_json_prints_the_summary_and_every_row(live: EmulatorProcess, tmp_path: Path) -> None:
    """--json prints one JSON document: the summary's figures and a row per candidate with
    its status, rules and reason; nothing else on stdout."""
    done = prune(live, "--keep-last", str(KEEP_LAST), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert (document["command"], document["mode"], document["candidates"]) == ("prune", "plan", 120)
    assert document["report_dir"] is None
    by_name = {r["name"]: r for r in document["results"]}
    assert len(by_name) == len(document["results"]) == 120
    want = {"delete": "would_delete", "kept": "kept", "skipped": "skipped"}
    assert {n: r["status"] for n, r in by_name.items()} == {
        n: want[p] for n, p in _expected().items()
    }
    assert all("last" in r["rules"].split() for r in by_name.values() if r["status"] == "kept")
    assert {r["reason"] for r in by_name.values() if r["state"] == "pending"} == {"pending"}
    assert document["freed_gb"] == sum(_size(n) for n in to_delete())
    assert document["counts"]["would_delete"] == len(to_delete())


# -- 5. metrics ------------------------------------------------------------------------------


def metrics(path: Path) -> dict[str, float]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_metrics_file_holds_the_prunes_gauges(live: EmulatorProcess, tmp_path: Path) -> None:
    """--metrics-file gets batchcopy_prune_* gauges: exit code, freed GB, copies by status."""
    path = tmp_path / "prune.prom"
    done = prune(
        live, "--keep-last", str(KEEP_LAST), "--yes", "--report-dir", "r",
        "--metrics-file", str(path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = metrics(path)
    assert all(name.startswith("batchcopy_prune_") for name in got)
    assert got["batchcopy_prune_exit_code"] == 0
    assert got["batchcopy_prune_freed_gigabytes"] == sum(_size(n) for n in to_delete())
    assert got['batchcopy_prune_snapshots{status="deleted"}'] == len(to_delete())
    assert got['batchcopy_prune_snapshots{status="kept"}'] == 2 * KEEP_LAST
    assert got['batchcopy_prune_snapshots{status="skipped"}'] == 16
    assert got["batchcopy_prune_delete_requests"] == len(to_delete())


@pytest.mark.parametrize(
    "args",
    [["--keep-daily", "-2"], ["--keep-last", "1", "--manifest", "missing.csv"], []],
)
def test_a_usage_error_writes_the_prunes_exit_code_to_the_metrics_file(
    live: EmulatorProcess, tmp_path: Path, args: list[str]
) -> None:
    """A prune refused as bad usage (exit 2) writes batchcopy_prune_exit_code 2 to its
    --metrics-file, replacing the last prune's figures, and no run's metrics."""
    path = tmp_path / "prune.prom"
    path.write_text("batchcopy_prune_exit_code 0.0\n")
    done = prune(live, *args, "--metrics-file", str(path), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    got = metrics(path)
    assert got["batchcopy_prune_exit_code"] == 2
    assert got["batchcopy_prune_last_success_timestamp_seconds"] == 0
    assert all(name.startswith("batchcopy_prune_") for name in got)


# -- 6. kill -9 and --resume -----------------------------------------------------------------


@pytest.mark.parametrize(
    "point", ["prune-opened:1", "prune-planned:1", "prune-intent:1", "prune-intent:7"]
)
def test_kill_during_a_prune_then_resume_deletes_each_once(
    live: EmulatorProcess, tmp_path: Path, point: str
) -> None:
    """kill -9 as the journal opens, right after the plan, or between deletes; then
    --resume --yes: exit 0, each candidate reported once, each delete sent once, and what
    the first run deleted is reported deleted."""
    killed = prune(
        live, "--keep-last", str(KEEP_LAST), "--yes", "--report-dir", "r",
        "--max-in-flight", "1", cwd=tmp_path, env={"BATCHCOPY_TEST_CRASH_AT": point},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    first = set(deleted_names(live))
    assert first <= to_delete()
    resumed = prune(live, "--resume", "r", "--yes", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    got = rows(tmp_path / "r")
    assert {n for n, r in got.items() if r["status"] == "deleted"} == to_delete()
    assert deleted_names(live) == dict.fromkeys(to_delete(), 1)
    assert delete_requests(live) == {"ok": len(to_delete())}  # none sent twice, no NotFound
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert (summary["candidates"], summary["exit_code"]) == (120, 0)
    assert not list((tmp_path / "r").glob("*.partial"))


# -- 7. SIGTERM ------------------------------------------------------------------------------


def test_sigterm_stops_the_prune_with_143_and_resume_finishes(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """A SIGTERM mid-prune exits 143 with summary.json written and the deletes not sent
    reported not_started; --resume then finishes them, each sent once."""
    stopped = prune(
        live, "--keep-last", str(KEEP_LAST), "--yes", "--report-dir", "r",
        "--max-in-flight", "1", cwd=tmp_path,
        env={"BATCHCOPY_TEST_CRASH_AT": "prune-intent:5:SIGTERM"},
    )  # fmt: skip
    assert stopped.returncode == 143, stopped.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["exit_code"] == 143
    got = rows(tmp_path / "r")
    left = {n for n, r in got.items() if r["status"] == "not_started"}
    done_first = {n for n, r in got.items() if r["status"] == "deleted"}
    assert left
    assert left | done_first == to_delete()
    assert set(deleted_names(live)) == done_first
    assert "batchcopy prune --resume r --yes" in stopped.stdout
    resumed = prune(live, "--resume", "r", "--yes", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    final = rows(tmp_path / "r")
    assert {n for n, r in final.items() if r["status"] == "deleted"} == to_delete()
    assert deleted_names(live) == dict.fromkeys(to_delete(), 1)
    assert delete_requests(live) == {"ok": len(to_delete())}


# -- 8. --manifest scopes the manifest's groups ----------------------------------------------

_TONIGHT = "2026-11-29"


def _nightly_seed() -> dict[str, Any]:
    """Tonight's sources in us-east-1 (web-1's automatic snapshots, data-1's manual
    snapshot, api-1's too), and five earlier nights' copies of each in eu-central-1."""
    copies: dict[str, list[dict[str, Any]]] = {"instanceSnapshots": [], "diskSnapshots": []}
    first = dt.datetime(2026, 11, 20, 2, 30, tzinfo=dt.UTC)
    for night in range(5):
        made = first + dt.timedelta(days=night)
        day = made.date().isoformat()
        where = {"line": 2, "source_region": "us-east-1", "target_region": REGION}
        for origin in ("web-1", "api-1"):
            job = CopyJob(
                **where, source_resource_name=origin, restore_date=day,
                target_snapshot_name=f"{origin}-{day}",
            )  # fmt: skip
            copies["instanceSnapshots"].append(
                {
                    "name": job.target_snapshot_name,
                    "fromInstanceName": origin,
                    "createdAt": made.isoformat(),
                    "tags": [{"key": SOURCE_TAG, "value": source_label(job)}],
                    "isFromAutoSnapshot": True,
                }
            )
        disk = CopyJob(
            **where, source_snapshot_name=f"data-1-{day}", target_snapshot_name=f"data-1-{day}-dr"
        )
        copies["diskSnapshots"].append(
            {
                "name": disk.target_snapshot_name,
                "fromDiskName": "data-1",
                "createdAt": made.isoformat(),
                "tags": [{"key": SOURCE_TAG, "value": source_label(disk)}],
            }
        )
    # Another job's copy of web-1 (a monthly archive, named otherwise): not this job's.
    archive = CopyJob(
        line=2, source_region="us-east-1", target_region=REGION, source_resource_name="web-1",
        restore_date="2026-11-01", target_snapshot_name="web-1-archive-2026-11",
    )  # fmt: skip
    copies["instanceSnapshots"].append(
        {
            "name": archive.target_snapshot_name,
            "fromInstanceName": "web-1",
            "createdAt": "2026-11-01T05:00:00Z",
            "tags": [{"key": SOURCE_TAG, "value": source_label(archive)}],
        }
    )
    source = {
        "instances": [{"name": "web-1"}, {"name": "api-1"}],
        "disks": [{"name": "data-1"}],
        "diskSnapshots": [{"name": f"data-1-{_TONIGHT}", "fromDiskName": "data-1"}],
        "autoSnapshots": {"web-1": [_TONIGHT], "api-1": [_TONIGHT]},
    }
    return {"regions": {"us-east-1": source, REGION: copies}}


def test_prune_manifest_prunes_its_jobs_copies_of_every_night_and_no_other(
    tmp_path: Path,
) -> None:
    """After a nightly run copied tonight's snapshots of web-1 and data-1 (dated names, as
    discover makes them), prune --manifest --keep-last 2 --yes deletes the earlier nights
    the same jobs made beyond the newest two, and leaves every copy of api-1, which the
    manifest does not name, and another job's archive copy of web-1."""
    seed = tmp_path / "nightly-seed.json"
    seed.write_text(json.dumps(_nightly_seed()))
    live = EmulatorProcess("--seed", str(seed))
    try:
        manifest = write_manifest(
            tmp_path / "nightly.csv",
            [
                f"us-east-1,{REGION},,web-1,{_TONIGHT},,web-1-{_TONIGHT}",
                f"us-east-1,{REGION},data-1-{_TONIGHT},,,,data-1-{_TONIGHT}-dr",
            ],
        )
        ran = run_cli(
            "run", str(manifest), "--endpoint-url", live.url, "--wait", "--tag", "job=nightly",
            "--report-dir", "run", "--quiet", cwd=tmp_path,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stdout + ran.stderr
        done = prune(
            live, "--manifest", str(manifest), "--keep-last", "2", "--yes",
            "--report-dir", "prune", cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        # Per origin: tonight's copy and the night before stay; the four before go.
        days = [f"2026-11-{d}" for d in range(20, 24)]
        want = {f"web-1-{d}" for d in days} | {f"data-1-{d}-dr" for d in days}
        assert deleted_names(live) == dict.fromkeys(want, 1)
        lines = (tmp_path / "prune" / "results.jsonl").read_text().splitlines()
        statuses = {r["name"]: r["status"] for r in map(json.loads, lines)}
        assert {n for n, s in statuses.items() if s == "kept"} == {
            f"web-1-{_TONIGHT}", "web-1-2026-11-24", f"data-1-{_TONIGHT}-dr",
            "data-1-2026-11-24-dr",
        }  # fmt: skip
        assert not any(name.startswith("api-1") for name in statuses)
        assert "web-1-archive-2026-11" not in statuses
    finally:
        live.stop()


# -- 9. progress -----------------------------------------------------------------------------


def test_a_long_prune_prints_progress_lines_when_stderr_is_not_a_terminal(
    tmp_path: Path,
) -> None:
    """A prune with --yes over a few hundred deletes that lasts more than five seconds
    prints progress lines on stderr (not a terminal): how many deleted so far."""
    history = _history()["regions"][REGION]
    regions = (REGION, "eu-west-1", "ap-south-1")
    seed = tmp_path / "three-regions.json"
    seed.write_text(json.dumps({"regions": dict.fromkeys(regions, history)}))
    live = EmulatorProcess("--seed", str(seed))
    try:
        # Every request answers 70 ms late and one delete at a time goes out per region:
        # the ~100 deletes of each region take 7 s or more, and well under 20.
        live.control("POST", "config", {"latency_ms": 70})
        proc = subprocess.run(
            [sys.executable, "-m", "batchcopy", "prune", "--endpoint-url", live.url,
             "--keep-last", str(KEEP_LAST), "--yes", "--report-dir", "r",
             "--max-in-flight", "1", "--rate", "100"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        summary = json.loads((tmp_path / "r" / "summary.json").read_text())
        assert summary["counts"]["deleted"] == 3 * len(to_delete())
        progress = [line for line in proc.stderr.splitlines() if "prune: " in line]
        assert progress, proc.stderr
        assert any("deleted" in line for line in progress), progress
    finally:
        live.stop()


def test_a_new_prune_in_a_stopped_prunes_folder_names_the_resume_that_works(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """A new prune into the folder of one killed mid-way is refused (exit 2, nothing sent),
    and the command the refusal names continues that prune to the end."""
    killed = prune(
        live, "--keep-last", str(KEEP_LAST), "--yes", "--report-dir", "r",
        "--max-in-flight", "1", cwd=tmp_path, env={"BATCHCOPY_TEST_CRASH_AT": "prune-intent:3"},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    sent = delete_requests(live)
    again = prune(live, "--keep-last", str(KEEP_LAST), "--yes", "--report-dir", "r", cwd=tmp_path)
    assert again.returncode == 2, again.stderr
    assert delete_requests(live) == sent
    told = again.stderr.split("resume it with ", 1)[1].split(",", 1)[0]
    assert told.startswith("batchcopy prune --resume r")
    resumed = prune(live, *told.split()[2:], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert deleted_names(live) == dict.fromkeys(to_delete(), 1)


def test_a_plan_is_no_successful_prune_in_the_metrics_file(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """A prune without --yes that exits 0 deletes nothing: its --metrics-file keeps the last
    success time as it was (none yet: 0), so a cron line missing --yes does not keep a
    staleness alert quiet; with --yes the time is set."""
    path = tmp_path / "prune.prom"
    planned = prune(live, "--keep-last", str(KEEP_LAST), "--metrics-file", str(path), cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert metrics(path)["batchcopy_prune_last_success_timestamp_seconds"] == 0
    done = prune(
        live, "--keep-last", str(KEEP_LAST), "--yes", "--report-dir", "r",
        "--metrics-file", str(path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert metrics(path)["batchcopy_prune_last_success_timestamp_seconds"] > 0


def test_a_scope_that_takes_none_of_the_copies_listed_says_so(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """A prune whose --run-id matches none of batchcopy's copies it listed says that none
    is in scope (a misspelt option would otherwise prune nothing, quietly, every night)."""
    done = prune(live, "--keep-last", "1", "--run-id", "no-such-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "None of the 120 copies of batchcopy's listed is in scope" in done.stdout
    assert delete_requests(live) == {}


def test_a_manifest_row_without_a_date_in_its_target_name_is_said(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """A --manifest whose row names a target without a date (YYYY-MM-DD) cannot tell its
    other nights' copies: prune says so on stderr instead of pruning nothing in silence."""
    manifest = write_manifest(
        tmp_path / "latest.csv", [f"us-east-1,{REGION},,web-1,,true,web-1-latest"]
    )
    done = prune(live, "--manifest", str(manifest), "--keep-last", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 row of" in done.stderr
    assert "name a target without a date" in done.stderr


def test_the_shards_of_a_prune_list_each_region_once_and_plan_the_whole_prune(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """prune --shard I/N for every I: each region is listed by one shard only (its tag in
    the User-Agent), and the shards' plans together are the whole prune's; resuming a
    shard's prune as another shard is refused."""
    planned: list[str] = []
    for index in range(2):
        done = prune(
            live, "--keep-last", str(KEEP_LAST), "--json", "--shard", f"{index}/2", cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        planned += [
            r["name"] for r in json.loads(done.stdout)["results"] if r["status"] == "would_delete"
        ]
    assert sorted(planned) == sorted(to_delete())
    clients = live.stats()["clients"]
    assert len(clients) > 2
    assert all(len(seen) == 1 for seen in clients.values()), clients
    assert {tag for seen in clients.values() for tag in seen} == {
        "batchcopy-shard/0-2",
        "batchcopy-shard/1-2",
    }
    assert delete_requests(live) == {}
    shard = clients[REGION][0].removeprefix("batchcopy-shard/").replace("-", "/")
    done = prune(
        live, "--keep-last", str(KEEP_LAST), "--yes", "--report-dir", "r", "--shard", shard,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert deleted_names(live) == dict.fromkeys(to_delete(), 1)
    other = "1/2" if shard == "0/2" else "0/2"
    refused = prune(live, "--resume", "r", "--yes", "--shard", other, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert f"the prune of shard {shard}, not shard {other}" in refused.stderr


def test_shards_of_a_prune_over_the_organization_need_one_account_list(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """prune --shard with --org (or --ou) and no --manifest exits 2 before any request:
    each shard would list the organization for itself, and an account that joined between
    two of them would move lanes, so some would be pruned by no shard."""
    for scope in (["--org"], ["--ou", "/Clients"]):
        refused = prune(
            live, "--keep-last", "1", *scope, "--role-name", "R", "--shard", "0/2", cwd=tmp_path
        )
        assert refused.returncode == 2, refused.stderr
        assert "every shard must split the same accounts" in refused.stderr
    assert live.stats()["requests_total"] == 0
