"""The prune command: delete the copies batchcopy made that a retention policy no longer
keeps; without --yes, only show the plan."""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from batchcopy.cli.exits import (
    EXIT_CREDENTIALS,
    EXIT_USAGE,
    _check_metrics_file,
    _fail,
    _settings_error,
    _stdout_may_close,
    _unusable,
    _unwritten_metrics,
)
from batchcopy.cli.options import (
    AccountsFile,
    ConnectTimeout,
    Debug,
    EndpointUrl,
    ExternalId,
    LogFile,
    LogFormat,
    Profile,
    Quiet,
    ReadTimeout,
    RoleDuration,
    RoleName,
    RoleSessionName,
    Verbose,
    _access,
    _load,
    _logging,
    _refuse_roleless,
)
from batchcopy.cli.progress import _watch_signals
from batchcopy.cli.render import _console, _plural
from batchcopy.cli.sharding import ShardOption, ShardsOption, _chosen_shard
from batchcopy.errors import BatchcopyError, CredentialsError, SettingsError, StorageError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from rich.status import Status

    from batchcopy.api import RunControl
    from batchcopy.prune import PruneResult, Scope
    from batchcopy.prune_report import PruneReport
    from batchcopy.retention import Policy
    from batchcopy.settings import Settings

PLAIN_PROGRESS_EVERY = 5.0  # seconds between status lines when stderr is not a terminal


def prune(
    keep_last: Annotated[
        int, typer.Option(help="Keep the N newest copies of each origin (-1: all).")
    ] = 0,
    keep_daily: Annotated[
        int, typer.Option(help="Keep the newest copy of each of N days (UTC; -1: all).")
    ] = 0,
    keep_weekly: Annotated[int, typer.Option(help="... of each of N ISO weeks (-1: all).")] = 0,
    keep_monthly: Annotated[int, typer.Option(help="... of each of N months (-1: all).")] = 0,
    keep_yearly: Annotated[int, typer.Option(help="... of each of N years (-1: all).")] = 0,
    keep_within: Annotated[
        str | None,
        typer.Option(help="Keep every copy made within this span of the newest: 14d, 6m, 1y2m."),
    ] = None,
    delete_failed: Annotated[
        bool, typer.Option("--delete-failed", help="Also delete copies in state error.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Delete. Without it, only show what would be deleted.")
    ] = False,
    manifest: Annotated[
        str | None,
        typer.Option(
            help="Only the copies this manifest's jobs make on any night: its target names, "
            "any date in them standing for any date (a nightly job's own)."
        ),
    ] = None,
    region: Annotated[
        list[str] | None,
        typer.Option(help="Target region to prune (repeatable; default: every region)."),
    ] = None,
    source_region: Annotated[
        list[str] | None, typer.Option(help="Only copies from this source region (repeatable).")
    ] = None,
    include: Annotated[
        list[str] | None,
        typer.Option(
            help="Only copies of sources (snapshot, instance or disk) matching this glob."
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="Leave copies of sources (snapshot, instance or disk) matching this."),
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="Only copies made by this run.")] = None,
    accounts: AccountsFile = None,
    org: Annotated[
        bool, typer.Option("--org", help="Prune in every ACTIVE account of the organization.")
    ] = False,
    ou: Annotated[
        list[str] | None,
        typer.Option(help="Only accounts under this organizational unit (id or /Path)."),
    ] = None,
    exclude_account: Annotated[
        list[str] | None, typer.Option(help="Leave this account out (repeatable).")
    ] = None,
    role_name: RoleName = None,
    external_id: ExternalId = None,
    role_session_name: RoleSessionName = None,
    role_duration: RoleDuration = 3600,
    rate: Annotated[
        float,
        typer.Option(
            help="Delete requests per second to start with, per region (and account, in a "
            "prune over many)."
        ),
    ] = 5.0,
    max_in_flight: Annotated[
        int, typer.Option(help="Deletes open at once per region (and account, over many).")
    ] = 32,
    max_attempts: Annotated[int, typer.Option(help="Tries per delete before it fails.")] = 10,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder for summary.json, results.jsonl/csv, report.html and the rest "
            "(with --yes, default: new)."
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue the prune whose report folder this is, by its own plan."),
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(help="Also write the prune's metrics here in Prometheus text format."),
    ] = None,
    shutdown_grace: Annotated[
        float, typer.Option(help="Seconds deletes in flight get to finish after Ctrl-C.")
    ] = 30.0,
    profile: Profile = None,
    endpoint_url: EndpointUrl = None,
    read_timeout: ReadTimeout = 60.0,
    connect_timeout: ConnectTimeout = 10.0,
    shard: ShardOption = None,
    shards: ShardsOption = None,
    quiet: Quiet = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary and every row as JSON on stdout.")
    ] = False,
    verbose: Verbose = 0,
    debug: Debug = False,
    log_format: LogFormat = "text",
    log_file: LogFile = None,
) -> None:
    """Delete the copies batchcopy made that no --keep-* rule keeps; without --yes, show the plan.

    Only snapshots carrying batchcopy's provenance tag are ever candidates. Per origin (the
    instance or disk the copies were made from) in each region, restic's rules keep copies;
    the newest good copy is always kept, pending ones always, failed ones unless
    --delete-failed. Exit 0 when every delete was done (or nothing was to be deleted), 1
    when one failed or a region could not be listed, 2 on bad usage, 130/143 on signals."""
    from batchcopy.retry import RetryPolicy
    from batchcopy.settings import Settings

    if metrics_file is not None:
        _unwritten_metrics["path"] = metrics_file
    _logging(verbose, debug, log_format, log_file)
    scoped = manifest or region or source_region or include or exclude or run_id
    if resume is not None:
        if not yes:
            raise _fail("batchcopy prune: --resume continues deletes: give --yes", EXIT_USAGE)
        if scoped or org or ou or exclude_account:
            raise _fail(
                "batchcopy prune: --resume continues the recorded plan in its own scope; "
                "leave out --manifest, --region, --source-region, --include, --exclude, "
                "--run-id, --org, --ou and --exclude-account (--accounts and --role-name "
                "still say how to reach the plan's accounts)",
                EXIT_USAGE,
            )
        if report_dir is not None and report_dir != resume:
            raise _fail("batchcopy prune: --resume already names the report folder", EXIT_USAGE)
    counts = {
        "keep_last": keep_last,
        "keep_daily": keep_daily,
        "keep_weekly": keep_weekly,
        "keep_monthly": keep_monthly,
        "keep_yearly": keep_yearly,
    }
    try:
        policy = _policy(counts, keep_within, delete_failed, resume=resume is not None)
        settings = Settings(
            rate=rate,
            max_in_flight=max_in_flight,
            retry=RetryPolicy(max_attempts=max_attempts),
            profile=profile,
            endpoint_url=endpoint_url,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
            access=_access(accounts, role_name, external_id, role_session_name, role_duration),
        )
        if not 0 <= shutdown_grace < float("inf"):
            raise SettingsError("must be 0 seconds or more", field="shutdown_grace")
    except BatchcopyError as exc:
        raise _settings_error("prune", exc) from None
    _check_metrics_file(metrics_file, "prune")
    scope, listed = _scope(manifest, region, source_region, include, exclude, run_id, settings)
    if (chosen := _chosen_shard("prune", shard, shards)) is not None:
        if manifest is None and (org or ou):
            # Each shard would ask the organization for itself: an account that joins or
            # leaves between two asks moves lanes, so some would be pruned by no shard.
            raise _settings_error(
                "prune",
                SettingsError(
                    "--shard with --org or --ou: every shard must split the same accounts; "
                    "give --manifest (the lanes of its split) or an --accounts file"
                ),
            )
        # The lanes of the manifest's split (or of every account and region, one each).
        scope = dataclasses.replace(scope, shard=str(chosen))
        settings = dataclasses.replace(settings, user_agent_extra=chosen.tag)
        if not quiet:
            from batchcopy.logs import say

            say(f"batchcopy prune: shard {chosen} from {chosen.source}")
    folder = resume or report_dir or (_new_report_dir() if yes else None)

    async def go(progress: _PruneProgress, control: RunControl) -> PruneReport:
        from batchcopy.discover import accounts_to_list
        from batchcopy.pruner import prune_snapshots
        from batchcopy.sessions import roleless

        chosen = listed
        if resume is not None:
            chosen = [""]  # the recorded plan says whose copies they are
        elif chosen is None:
            found = await accounts_to_list(
                settings, organization=org, units=ou or (), exclude=exclude_account or ()
            )
            if (org or ou or accounts) and not found:
                raise SettingsError("no account to prune: the organization or file names none left")
            chosen = found or [""]
        if missing := await roleless(settings, [a for a in chosen if a]):
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise SettingsError(
                f"no role reaches account{'s' if len(missing) > 1 else ''} {shown}: give "
                "--role-name, or a role for each in the --accounts file; nothing was deleted"
            )
        return await prune_snapshots(
            policy,
            settings,
            scope=scope,
            accounts=chosen,
            delete=yes,
            report_dir=folder,
            resume=resume is not None,
            control=control,
            on_result=progress.add,
        )

    report = _run(go, quiet=quiet, grace=shutdown_grace)
    _unwritten_metrics.pop("path", None)
    if metrics_file is not None:
        _write_metrics(report, metrics_file)
    with _stdout_may_close(report.exit_code):
        _print_report(report, folder, as_json=as_json)
    raise typer.Exit(report.exit_code)


def _policy(
    counts: dict[str, int], keep_within: str | None, delete_failed: bool, *, resume: bool
) -> Policy | None:
    """The policy the options give; None on a resume that gives no keep rule (the recorded
    one is used)."""
    from batchcopy.retention import Policy, parse_duration

    within = parse_duration(keep_within) if keep_within is not None else None
    if keep_within is not None and not within and not any(counts.values()):
        raise SettingsError(
            f"--keep-within {keep_within} keeps nothing (a span of 0); give a longer span, "
            "or a --keep-* count; nothing was deleted"
        )
    if not any(counts.values()) and not within:
        if resume:
            return None  # the recorded policy
        raise SettingsError(
            "no keep rule given: give at least one of --keep-last, --keep-daily, "
            "--keep-weekly, --keep-monthly, --keep-yearly (a count, -1 for all) or "
            "--keep-within (a span such as 14d); nothing was deleted"
        )
    return Policy(**counts, keep_within=within, delete_failed=delete_failed)


def _scope(
    manifest: str | None,
    regions: list[str] | None,
    source_regions: list[str] | None,
    include: list[str] | None,
    exclude: list[str] | None,
    run_id: str | None,
    settings: Settings,
) -> tuple[Scope, list[str] | None]:
    """What the options limit the prune to, and the accounts a manifest names (None: no
    manifest, the account options say)."""
    from batchcopy.facts import lightsail_regions
    from batchcopy.prune import Scope, name_shape

    known = lightsail_regions()
    for option, values in (("--region", regions), ("--source-region", source_regions)):
        for value in values or ():
            if value not in known:
                raise _fail(
                    f"batchcopy prune: {option} {value!r} is not a Lightsail region "
                    f"(one of {', '.join(known)})",
                    EXIT_USAGE,
                )
    limits: dict[str, Any] = {
        "regions": tuple(regions or ()),
        "source_regions": tuple(source_regions or ()),
        "include": tuple(include or ()),
        "exclude": tuple(exclude or ()),
        "run_id": run_id or "",
    }
    if manifest is None:
        return Scope(**limits), None
    source = source_regions[0] if source_regions and len(source_regions) == 1 else None
    loaded = _load(manifest, source, regions, unsent="nothing was deleted")
    if loaded.per_account:
        _refuse_roleless("prune", loaded.per_account, settings)
    jobs = list(loaded.jobs())
    scope = Scope.of_jobs(jobs, **limits)
    if undated := sum(name_shape(j.target_snapshot_name) == j.target_snapshot_name for j in jobs):
        from batchcopy.logs import say

        say(
            f"batchcopy prune: {_plural(undated, 'row')} of {manifest} name a target without a "
            "date (YYYY-MM-DD): only that very copy is theirs; copies of other nights under "
            "other names are not pruned",
            level="warning",
        )
    accounts = sorted({job.account for job in jobs})
    return scope, accounts


def _new_report_dir() -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(f"batchcopy-prune-{stamp}-{os.getpid()}")


def _run(
    go: Callable[[_PruneProgress, RunControl], Awaitable[PruneReport]],
    *,
    quiet: bool,
    grace: float,
) -> PruneReport:
    """Run ``go`` under the progress line and the signal watch; exit with the code its
    errors make (2 usage, 253 credentials, 1 a full disk)."""
    import anyio

    from batchcopy.api import RunControl
    from batchcopy.errors import unwrap

    async def main() -> PruneReport:
        control = RunControl(grace=grace)
        progress = _PruneProgress(quiet=quiet)
        async with anyio.create_task_group() as tg:
            await tg.start(_watch_signals, control, progress)
            tg.start_soon(progress.keep_fresh)
            try:
                report: PruneReport = await go(progress, control)
            finally:
                progress.close()
            tg.cancel_scope.cancel()
        return report

    try:
        try:
            return anyio.run(main, backend="asyncio")
        except BaseExceptionGroup as group:
            if (error := unwrap(group, BatchcopyError)) is None:
                raise
            raise error from None
    except CredentialsError as exc:
        raise _fail(_unusable(exc), EXIT_CREDENTIALS) from None
    except StorageError as exc:  # a full disk: what was sent is in the journal
        raise _fail(f"batchcopy prune: {exc}", 1) from None
    except SettingsError as exc:
        raise _settings_error("prune", exc) from None
    except BatchcopyError as exc:
        raise _fail(f"batchcopy prune: {exc}", EXIT_USAGE) from None


class _PruneProgress:
    """How far a prune is, on stderr: candidates settled by status, every few seconds
    (on a terminal, one line kept fresh)."""

    def __init__(self, *, quiet: bool) -> None:
        from batchcopy.logs import stderr_format

        self._quiet = quiet
        self._console = _console(stderr=True)
        self._live = not quiet and stderr_format() != "json" and self._console.is_terminal
        self._counts: Counter[str] = Counter()
        self._started = self._last = time.monotonic()
        self._status: Status | None = None
        if self._live:
            self._status = self._console.status("prune: listing batchcopy's copies")
            self._status.start()

    def add(self, result: PruneResult) -> None:
        self._counts[result.status.value] += 1
        if self._status is not None:
            self._status.update(self._text())

    def say(self, message: str) -> None:
        if self._status is not None:
            self._console.print(message, highlight=False)
        else:
            from batchcopy.logs import say

            say(message, level="warning")

    async def keep_fresh(self) -> None:
        import anyio

        while True:
            await anyio.sleep(1.0)
            due = time.monotonic() - self._last >= PLAIN_PROGRESS_EVERY
            if not self._quiet and self._status is None and due:
                from batchcopy.logs import say

                self._last = time.monotonic()
                say(self._text())

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()

    def _text(self) -> str:
        elapsed = time.monotonic() - self._started
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self._counts.items()))
        return f"prune: {counts or 'listing batchcopy copies'} ({elapsed:.0f} s)"


def _write_metrics(report: PruneReport, metrics_file: Path) -> None:
    from batchcopy.logs import say
    from batchcopy.metrics import write_prune_metrics

    try:
        write_prune_metrics(report.summary, metrics_file)
    except OSError as exc:
        say(f"batchcopy prune: --metrics-file {metrics_file}: not written ({exc.strerror})")


def _print_report(report: PruneReport, folder: Path | None, *, as_json: bool) -> None:
    import json

    summary = report.summary
    if as_json:
        document = summary.to_json() | {"report_dir": str(folder) if folder else None}
        document["results"] = [result.to_row() for result in report.results]
        typer.echo(json.dumps(document, indent=2))
        return
    from rich.table import Table

    console = _console()
    if not summary.delete:
        for where in sorted({r.lane for r in report.results}):
            table = Table(
                title=f"{where}: kept, skipped and would be deleted", title_justify="left"
            )
            for column in ("origin", "copy", "night", "state", "GB", "plan", "why"):
                table.add_column(column, justify="right" if column == "GB" else "left")
            rows = [r for r in report.results if r.lane == where]
            rows.sort(key=lambda r: (r.found.origin, r.found.group, -r.found.taken_at))
            for r in rows:  # each origin's copies, newest night first
                row = r.to_row()
                why = r.reason or " ".join(r.rules)
                table.add_row(
                    r.found.origin,
                    r.found.snapshot.name,
                    r.found.date or row["created_at"][:16].replace("T", " "),
                    r.found.snapshot.state,
                    str(r.found.snapshot.size_in_gb),
                    r.status.value.replace("_", " "),
                    why,
                )
            console.print(table)
    statuses = [s for s, n in summary.counts.items() if n]
    table = Table()
    table.add_column("region")
    for status in statuses:
        table.add_column(status.replace("_", " "), justify="right")
    for where, counts in summary.by_region.items():
        table.add_row(where, *(str(counts.get(s, 0)) for s in statuses))
    table.add_row("all", *(str(summary.counts[s]) for s in statuses), style="bold")
    if statuses:
        console.print(table)
    verb = "deleted" if summary.delete else "would be deleted (give --yes to delete)"
    console.print(
        f"{_plural(summary.candidates, 'copy', 'copies')} of batchcopy's; {summary.freed_gb} GB "
        f"{verb}: up to ${summary.monthly_saving:.2f} a month saved (Lightsail bills the "
        f"storage snapshots use, often less than their size). Policy: {summary.policy}.",
        highlight=False,
    )
    if summary.seen > summary.candidates == 0:
        console.print(
            f"None of the {_plural(summary.seen, 'copy', 'copies')} of batchcopy's listed is "
            "in scope: check --manifest, --region, --include, --exclude and --run-id.",
            highlight=False,
        )
    for failure in summary.lanes_failed:
        console.print(f"Not listed, so nothing pruned there: {failure}", highlight=False)
    if failed := summary.counts.get("failed", 0):
        console.print(
            f"{_plural(failed, 'delete')} failed (the errors are in the report); a new prune "
            "(not --resume, which keeps their outcome) tries them again.",
            highlight=False,
        )
    if (left := summary.counts.get("not_started", 0)) and folder is not None:
        console.print(
            f"{_plural(left, 'delete')} not done: batchcopy prune --resume {folder} --yes "
            "continues.",
            highlight=False,
        )
    if folder is not None and summary.delete:
        console.print(f"Report: {folder}", highlight=False)
