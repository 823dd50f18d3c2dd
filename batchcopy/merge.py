"""Merge: the report folders of a run's shards become the one report of the run.

:func:`merge_reports` checks that the folders are the N shards of one manifest and one
assignment (each shard exactly once), then writes summary.json, results.jsonl and
results.csv (every job once, in manifest line order) and retry.csv, with the exit code a
single run would have had. A missing shard is an error naming it; with ``allow_missing``
its jobs, read from the manifest, become ``not_started`` rows (exit 1).

Memory stays bounded however many rows there are: a shard's results.jsonl is in completion
order, so each is cut into sorted runs of :data:`RUN_ROWS` rows in temporary files (an
external sort), and all runs are merged a row at a time (``heapq.merge``). Rows are ordered by
manifest line, then target region and account (a row fanning out to several regions makes
one job per region, all on its line).
"""

from __future__ import annotations

import contextlib
import csv
import heapq
import json
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from batchcopy.errors import BatchcopyError, ManifestError, ReportDirError
from batchcopy.html_report import html_report_or_warn
from batchcopy.jobs import BASE_ACCOUNT, MANIFEST_FIELDS, SENT_BEFORE, JobResult, Status
from batchcopy.journal import JOURNAL_NAME, records, refuse_if_held
from batchcopy.report import (
    RESULT_COLUMNS,
    Report,
    Summary,
    _inert,
    _write_atomically,
    prepare_report_dir,
)
from batchcopy.timeline import TIMELINE_NAME, merge_timelines

if TYPE_CHECKING:
    from batchcopy.manifest import Manifest
    from batchcopy.shards import Assignment

__all__ = ["MergeError", "merge_reports"]

RUN_ROWS = 50_000  # rows sorted in memory at a time
FAN_IN = 64  # sorted runs merged at once: files open at once, far below any ulimit
_CODES_OF_A_RUN = (0, 1)  # codes the rows decide; any other (130, 253) ended a shard early


class MergeError(ReportDirError):
    """The folders are not the shards of one run (mixed manifests, a shard twice or
    missing), or one cannot be read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Part:
    directory: Path
    summary: dict[str, Any]
    index: int
    count: int


def merge_reports(
    directories: Sequence[Path | str],
    out: Path | str,
    *,
    allow_missing: bool = False,
    manifest: Path | str | None = None,
) -> Report:
    """Merge the shards' report folders ``directories`` into ``out``; return its report.

    With ``allow_missing``, the jobs of shards not given are read from ``manifest`` (by
    default the path the shards' summaries name) and reported ``not_started``."""
    parts = [_read_part(Path(d)) for d in directories]
    if not parts:
        raise MergeError("give the report folders of the shards to merge")
    first = parts[0]
    for part in parts[1:]:
        if part.count != first.count:
            raise MergeError(
                f"{part.directory} is a shard of another shard count than {first.directory} "
                f"({part.count} shards against {first.count}); merge the shards of one run"
            )
        for key, what in (("manifest_sha256", "manifest"), ("assignment_digest", "assignment")):
            if part.summary.get(key) != first.summary.get(key):
                raise MergeError(
                    f"{part.directory} is a shard of another {what} than {first.directory} "
                    f"({str(part.summary.get(key))[:12]}... against "
                    f"{str(first.summary.get(key))[:12]}...); merge the shards of one run"
                )
    by_index: dict[int, _Part] = {}
    for part in parts:
        if (twin := by_index.get(part.index)) is not None:
            raise MergeError(
                f"shard {part.index}/{part.count} is given twice: {twin.directory} and "
                f"{part.directory}"
            )
        by_index[part.index] = part
    missing = [i for i in range(first.count) if i not in by_index]
    if missing and not allow_missing:
        names = ", ".join(f"{i}/{first.count}" for i in missing)
        raise MergeError(
            f"missing shard{'s' if len(missing) > 1 else ''} {names} (of {first.count}); "
            "give every shard's folder, or --allow-missing to report their jobs not_started"
        )
    out = Path(out)
    for part in parts:
        if out.absolute() == part.directory.absolute():
            raise MergeError(f"{out} is one of the shards' folders; merge into another")
    if (out / JOURNAL_NAME).exists():
        raise MergeError(f"{out} holds a run's journal; merge into a new folder")
    ordered = [by_index[i] for i in sorted(by_index)]
    # A manifest given is tonight's: folders a shard left from an earlier night (it refused
    # tonight's run, exit 2) are refused, never merged into tonight's report. Missing shards'
    # jobs are read from it (or from the one the summaries name).
    ran = _shards_manifest(ordered, manifest) if manifest is not None or missing else None
    absent = _absent_jobs(*ran, missing) if ran is not None and missing else None
    directory = prepare_report_dir(out)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".merge-") as scratch:
        files = [run for part in ordered for run in _sorted_runs(part, Path(scratch))]
        runs = [_read_run(path) for path in _fewer_runs(files, Path(scratch))]
        if absent is not None:
            runs.append(absent)
        report = _write(directory, ordered, runs, missing, first)
    _write_timeline(directory, ordered)
    html_report_or_warn(directory)  # last: a view of the files written above
    return report


def _write_timeline(directory: Path, parts: list[_Part]) -> None:
    """The shards' timelines as the run's one, for the page's pictures over time (shards
    from an older batchcopy have none: the page then says so)."""
    read = []
    for part in parts:
        try:
            timeline = json.loads((part.directory / TIMELINE_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(timeline, dict):
            read.append(timeline)
    if (merged := merge_timelines(read)) is not None:
        text = json.dumps(merged, separators=(",", ":"))
        _write_atomically(directory / TIMELINE_NAME, text)


def _read_part(directory: Path) -> _Part:
    path = directory / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MergeError(f"{path}: no such file; is {directory} a shard's report folder?") from None
    except (OSError, ValueError) as exc:
        raise MergeError(f"{path}: cannot be read ({exc})") from None
    shard = summary.get("shard") if isinstance(summary, dict) else None
    if not isinstance(shard, str) or not summary.get("assignment_digest"):
        raise MergeError(f"{directory} is not a shard's report (its run had no --shard)")
    index, _, count = shard.partition("/")
    if not (index.isdigit() and count.isdigit()):
        raise MergeError(f"{path}: shard {shard!r} is not I/N")
    if not isinstance(summary.get("exit_code"), int) or not isinstance(summary.get("total"), int):
        raise MergeError(f"{path}: no exit code or total: not a finished shard's report")
    if not (directory / "results.jsonl").is_file():
        raise MergeError(f"{directory}: no results.jsonl; is the shard's run still going?")
    try:
        refuse_if_held(directory)
    except ReportDirError as exc:
        raise MergeError(f"{exc}: a shard still running has no report to merge yet") from None
    began = _journal_run_id(directory)
    if began is not None and began != summary.get("run_id"):
        # A run started afresh in the folder (its journal new) and never wrote its report:
        # the summary left there is an earlier run's, however finished it looks.
        raise MergeError(
            f"{path} is run {summary.get('run_id')}'s, but the folder's journal is run "
            f"{began}'s, which never finished its report; resume it (--resume {directory} "
            f"--shard {shard}), then merge"
        )
    return _Part(directory=directory, summary=summary, index=int(index), count=int(count))


def _journal_run_id(directory: Path) -> str | None:
    """The run id the folder's journal begins with, if it has one that can be read."""
    try:
        with (directory / JOURNAL_NAME).open(encoding="utf-8") as journal:
            first = json.loads(journal.readline())
    except (OSError, ValueError):
        return None
    run_id = first.get("run_id") if isinstance(first, dict) else None
    return run_id if isinstance(run_id, str) else None


_Key = tuple[int, str, str]
# The sort key, the row's JSON line as the shard wrote it, and whether it stands for a
# missing shard's job (not in any shard's retry.csv).
_Row = tuple[_Key, str, bool]


def _key(row: dict[str, Any]) -> _Key:
    return (int(row["line"]), str(row["target_region"]), str(row.get("account") or ""))


def _sorted_runs(part: _Part, scratch: Path) -> list[Path]:
    """The shard's rows as sorted runs in temporary files; the count of rows checked
    against its summary's total."""
    path = part.directory / "results.jsonl"
    runs: list[Path] = []
    rows = 0
    statuses: Counter[str] = Counter()
    chunk: list[_Row] = []

    def spill() -> None:
        chunk.sort(key=lambda row: row[0])
        fd, name = tempfile.mkstemp(dir=scratch, suffix=".jsonl")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines(line for _, line, _ in chunk)
        runs.append(Path(name))
        chunk.clear()

    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            try:
                row = json.loads(line)
                chunk.append((_key(row), line if line.endswith("\n") else line + "\n", False))
                statuses[Status(row["status"]).value] += 1
            except (ValueError, KeyError, TypeError):
                raise MergeError(f"{path}:{number}: not a row batchcopy writes") from None
            rows += 1
            if len(chunk) >= RUN_ROWS:
                spill()
    if chunk:
        spill()
    if rows != part.summary.get("total"):
        raise MergeError(
            f"{path} has {rows} rows, its summary.json says {part.summary.get('total')}: "
            "the folder is not a finished shard's report"
        )
    said = part.summary.get("counts")
    if isinstance(said, dict) and {k: v for k, v in said.items() if v} != dict(statuses):
        # The rows of one run, the summary of another: a run killed while it wrote its
        # report (the rows are moved into place first).
        raise MergeError(
            f"{path} and its summary.json count other statuses ({dict(statuses)} against "
            f"{ {k: v for k, v in said.items() if v} }): the shard's last run did not finish "
            f"its report; resume it (--resume {part.directory} --shard "
            f"{part.index}/{part.count}), then merge"
        )
    return runs


def _fewer_runs(runs: list[Path], scratch: Path) -> list[Path]:
    """At most :data:`FAN_IN` runs, so the last merge keeps few files open however many
    shards there are: runs beyond it are merged into longer runs first."""
    runs = list(runs)
    while len(runs) > FAN_IN:
        group, runs = runs[:FAN_IN], runs[FAN_IN:]
        fd, name = tempfile.mkstemp(dir=scratch, suffix=".jsonl")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            merged = heapq.merge(*map(_read_run, group), key=lambda row: row[0])
            handle.writelines(line for _, line, _ in merged)
        runs.append(Path(name))
    return runs


def _read_run(path: Path) -> Iterator[_Row]:
    with path.open(encoding="utf-8") as file:
        for line in file:
            yield _key(json.loads(line)), line, False
    path.unlink()


def _absent_jobs(manifest: Manifest, assignment: Assignment, missing: list[int]) -> Iterator[_Row]:
    """The jobs of the missing shards as not_started rows, in line order, read from the
    manifest the shards ran (:func:`_shards_manifest` checked it)."""
    wanted = {lane for i in missing for lane in assignment.lanes_in(i)}

    def rows() -> Iterator[_Row]:
        group: list[_Row] = []
        for job in manifest.jobs():
            if job.lane not in wanted:
                continue
            row = JobResult(job=job, status=Status.NOT_STARTED).to_row()
            if group and group[0][0][0] != job.line:
                yield from sorted(group)
                group.clear()
            group.append((_key(row), json.dumps(row, ensure_ascii=False) + "\n", True))
        yield from sorted(group)

    return rows()


def _shards_manifest(parts: list[_Part], given: Path | str | None) -> tuple[Manifest, Assignment]:
    """The manifest the shards ran (``given``, or the path their summaries name) and its
    assignment; refused unless its sha256 and the assignment's digest are theirs."""
    from batchcopy.manifest import load_manifest
    from batchcopy.shards import assignment_of

    first = parts[0].summary
    path = Path(given) if given is not None else Path(str(first.get("manifest")))
    defaults = _defaults(parts[0].directory)
    try:
        manifest = load_manifest(
            path,
            source_region=defaults.get("source_region"),
            target_region=defaults.get("target_region"),
        )
    except ManifestError as exc:
        raise MergeError(
            f"the manifest the shards ran cannot be read: {exc}; give it with --manifest"
        ) from None
    if manifest.sha256 != first.get("manifest_sha256"):
        raise MergeError(
            f"{path} is not the manifest the shards ran (sha256 {manifest.sha256[:12]}..., "
            f"theirs {str(first.get('manifest_sha256'))[:12]}...); give it with --manifest"
        )
    assignment = assignment_of(manifest, parts[0].count)
    if assignment.digest != first.get("assignment_digest"):
        raise MergeError(f"{path} splits into another assignment than the shards ran")
    return manifest, assignment


def _defaults(directory: Path) -> dict[str, str]:
    """The default regions a shard's run gave (its journal's run record), for reading the
    manifest as it did."""
    with contextlib.suppress(OSError, BatchcopyError, StopIteration):
        header = next(records(directory / JOURNAL_NAME))[2]
        given = header.get("defaults") or {}
        return {k: v for k, v in given.items() if k in ("source_region", "target_region")}
    return {}


def _write(
    directory: Path,
    parts: list[_Part],
    runs: list[Iterator[_Row]],
    missing: list[int],
    first: _Part,
) -> Report:
    counts: Counter[str] = Counter()
    by_region: defaultdict[str, Counter[str]] = defaultdict(Counter)
    by_account: defaultdict[str, Counter[str]] = defaultdict(Counter)
    sums: Counter[str] = Counter()
    names = ("results.jsonl", "results.csv", "retry.csv")
    handles = [_create(directory / f"{name}.partial") for name in names]
    jsonl, csv_file, retry_file = handles
    try:
        table = csv.DictWriter(csv_file, RESULT_COLUMNS)
        table.writeheader()
        retry = csv.DictWriter(retry_file, (*MANIFEST_FIELDS, SENT_BEFORE))
        retry.writeheader()
        previous: _Key | None = None
        for key, line, absent in heapq.merge(*runs, key=lambda row: row[0]):
            if key == previous:
                raise MergeError(f"line {key[0]} ({key[1]}) is in two shards' reports")
            previous = key
            row = json.loads(line)
            jsonl.write(line)
            table.writerow({k: _inert(v) for k, v in row.items()})
            status = row["status"]
            counts[status] += 1
            by_region[row["target_region"]][status] += 1
            by_account[row.get("account") or BASE_ACCOUNT][status] += 1
            for name in ("attempts", "throttles", "reconciled"):
                sums[name] += int(row.get(name) or 0)
            sums["tag_failures"] += bool(row.get("tag_error"))
            if absent:  # never run: retry.csv lists it as written
                sums["retry"] += 1
                retry.writerow({**JobResult.from_row(row).job.to_row(), SENT_BEFORE: ""})
        for part in parts:
            # The shards' own retry rows as they wrote them: only a shard knows which of
            # its jobs may have made their copy (sent_before) and the dates it pinned.
            sums["retry"] += _copy_retry_rows(part.directory / "retry.csv", retry_file)
        for handle in handles:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
    except BaseException:
        for handle in handles:
            handle.close()
        for name in names:
            (directory / f"{name}.partial").unlink(missing_ok=True)
        raise
    for name in names:
        if name == "retry.csv" and not sums["retry"]:
            (directory / f"{name}.partial").unlink()
            (directory / name).unlink(missing_ok=True)
            continue
        os.replace(directory / f"{name}.partial", directory / name)
    summary = _summary(directory, parts, counts, by_region, by_account, sums, missing)
    body = {
        **summary.to_json(),
        "shards": first.count,
        "assignment_digest": first.summary["assignment_digest"],
        "merged_from": [
            {
                "shard": f"{p.index}/{p.count}",
                "report_dir": str(p.directory),
                "run_id": p.summary.get("run_id", ""),
                "exit_code": p.summary.get("exit_code"),
            }
            for p in parts
        ],
        "missing_shards": [f"{i}/{first.count}" for i in missing],
    }
    _write_atomically(directory / "summary.json", json.dumps(body, indent=2) + "\n")
    return Report(summary=summary, results=())


def _copy_retry_rows(path: Path, out: IO[str]) -> int:
    """Copy a shard's retry.csv rows (its header left out) to ``out``; how many."""
    try:
        file = path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        return 0  # every job of the shard went through
    copied = 0
    with file:
        reader = csv.reader(file)
        next(reader, None)
        writer = csv.writer(out)
        for row in reader:
            writer.writerow(row)
            copied += 1
    return copied


def _summary(
    directory: Path,
    parts: list[_Part],
    counts: Counter[str],
    by_region: dict[str, Counter[str]],
    by_account: dict[str, Counter[str]],
    sums: Counter[str],
    missing: list[int],
) -> Summary:
    """The summary a single run would have written: counts from the merged rows; timings,
    rates and throttles from the shards'; its exit code the rows', unless a shard ended
    early (interrupted, unusable credentials): then the first such shard's."""
    summaries = [p.summary for p in parts]
    rates: Counter[str] = Counter()
    throttled: Counter[str] = Counter()
    start_rates: dict[str, Any] = {}
    for s in summaries:
        rates.update(s.get("rates") or {})
        throttled.update(s.get("throttled_by_action") or {})
        start_rates.update(s.get("start_rates") or {})
    ok = all(Status(s).ok for s, n in counts.items() if n) and not sums["tag_failures"]
    early = [c for s in summaries if (c := s.get("exit_code")) not in _CODES_OF_A_RUN]
    exit_code = int(str(early[0])) if early else 0 if ok and not missing else 1
    first = summaries[0]
    return Summary(
        manifest=str(first.get("manifest", "")),
        manifest_sha256=str(first.get("manifest_sha256", "")),
        total=counts.total(),
        counts={s.value: counts.get(s, 0) for s in Status},
        by_region={
            region: {s.value: c[s] for s in Status if c.get(s)}
            for region, c in sorted(by_region.items())
        },
        by_account={}
        if set(by_account) <= {BASE_ACCOUNT}
        else {
            account: {s.value: c[s] for s in Status if c.get(s)}
            for account, c in sorted(by_account.items())
        },
        attempts=sums["attempts"],
        throttles=sums["throttles"],
        reconciled=sums["reconciled"],
        tag_failures=sums["tag_failures"],
        rates={region: round(rate, 2) for region, rate in sorted(rates.items())},
        started_at=min(float(s.get("started_at", 0)) for s in summaries),
        finished_at=max(float(s.get("finished_at", 0)) for s in summaries),
        exit_code=exit_code,
        report_dir=str(directory),
        start_rate=first.get("start_rate"),
        start_rates=dict(sorted(start_rates.items())),
        max_rate=first.get("max_rate"),
        finished=sum(int(s.get("finished", 0)) for s in summaries),
        # Each shard tags its copies with its own run id: the merged run is all of them.
        run_id=",".join(str(s.get("run_id", "")) for s in summaries),
        throttled_by_action=dict(sorted(throttled.items())),
    )


def _create(path: Path) -> IO[str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise ReportDirError(f"{path}: cannot write the merged report ({exc.strerror})") from None
    return os.fdopen(fd, "w", encoding="utf-8", newline="")
