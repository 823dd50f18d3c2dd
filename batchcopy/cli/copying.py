"""The commands that copy: run, and demo (a run against the built-in emulator).

Both run under the progress display and the signal watch, write the report, and exit with
the code the report holds.
"""

from __future__ import annotations

import math
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from batchcopy.cli.checking import _show_plan
from batchcopy.cli.exits import (
    EXIT_USAGE,
    _check_metrics_file,
    _fail,
    _metrics_by_account,
    _settings_error,
    _stdout_may_close,
    _unwritten_metrics,
    _write_metrics,
)
from batchcopy.cli.options import (
    AccountsFile,
    AsJson,
    ConnectTimeout,
    Debug,
    EndpointUrl,
    ExternalId,
    LogFile,
    LogFormat,
    ManifestArg,
    Profile,
    Quiet,
    ReadTimeout,
    RoleDuration,
    RoleName,
    RoleSessionName,
    SourceRegion,
    TargetRegion,
    Verbose,
    _access,
    _load,
    _logging,
    _parse_tags,
    _refuse_roleless,
)
from batchcopy.cli.progress import _Progress, _run_with_progress
from batchcopy.cli.render import _print_summary
from batchcopy.cli.sharding import ShardOption, ShardsOption, _chosen_shard, _shard_part
from batchcopy.errors import (
    BatchcopyError,
)

if TYPE_CHECKING:
    from batchcopy.api import RunControl
    from batchcopy.report import Report


def run(
    ctx: typer.Context,
    manifest: ManifestArg,
    source_region: SourceRegion = None,
    target_region: TargetRegion = None,
    rate: Annotated[
        float,
        typer.Option(
            help="Write requests per second to start with, per target region (and account, "
            "in a run over many): each job is two, a CopySnapshot and its TagResource."
        ),
    ] = 5.0,
    burst: Annotated[
        int,
        typer.Option(
            help="Requests allowed at once after a quiet spell, per target region and "
            "account, at a fixed rate (an adaptive one sends one at a time until it knows "
            "the limit).",
        ),
    ] = 5,
    max_rate: Annotated[
        float,
        typer.Option(
            help="The adaptive rate never goes above this (requests/s per target region and "
            "account); by default a safety cap only."
        ),
    ] = 10_000.0,
    adaptive: Annotated[
        bool,
        typer.Option(
            "--adaptive/--fixed-rate",
            help="Cut the rate on throttles and probe upward while calls succeed.",
        ),
    ] = True,
    max_in_flight: Annotated[
        int,
        typer.Option(
            help="The most copy and tag requests in flight at once per target region, whatever "
            "their account, and jobs open there (at least one per account); below it, the "
            "cap follows the rate."
        ),
    ] = 128,
    rate_state: Annotated[
        Path | None,
        typer.Option(
            help="Remember each region's learned rate in this file, and start from it (default: "
            "rates.json in the user's cache folder). An explicit --rate wins over it."
        ),
    ] = None,
    no_rate_state: Annotated[
        bool,
        typer.Option("--no-rate-state", help="Neither start from nor remember learned rates."),
    ] = False,
    rate_state_max_age: Annotated[
        float, typer.Option(help="Days after which a remembered rate is no longer used.")
    ] = 7.0,
    max_attempts: Annotated[int, typer.Option(help="Tries per job before it fails.")] = 10,
    job_timeout: Annotated[
        float, typer.Option(help="Seconds from a job's first try after which it is not retried.")
    ] = 900.0,
    on_exists: Annotated[
        str, typer.Option(help="A target that already exists (same source): skip or fail.")
    ] = "skip",
    report_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder for summary.json, results.jsonl/csv, report.html and the rest "
            "(default: new)."
        ),
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            help="Also write the run's metrics to this file in Prometheus text format, for "
            "node_exporter's textfile collector (name it *.prom); the folder must exist."
        ),
    ] = None,
    metrics_by_account: Annotated[
        bool,
        typer.Option(
            "--metrics-by-account",
            help="Also put jobs by account in --metrics-file (a series per account).",
        ),
    ] = False,
    profile: Profile = None,
    endpoint_url: EndpointUrl = None,
    read_timeout: ReadTimeout = 60.0,
    connect_timeout: ConnectTimeout = 10.0,
    accounts: AccountsFile = None,
    role_name: RoleName = None,
    external_id: ExternalId = None,
    role_session_name: RoleSessionName = None,
    role_duration: RoleDuration = 3600,
    tag: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE tag for every copy (repeatable); adds provenance tags."),
    ] = None,
    copy_tags: Annotated[
        bool, typer.Option("--copy-tags", help="Give each copy its source snapshot's tags.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only check and show the plan; copy nothing.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Follow each copy until it succeeds or fails, not just started."
        ),
    ] = False,
    wait_timeout: Annotated[
        float, typer.Option(help="Seconds to follow a copy before reporting it in_progress.")
    ] = 3600.0,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue the run whose report folder this is: finished jobs are "
            "kept, interrupted ones looked up, the rest run."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Resume even if the journal is for another manifest or other default regions.",
        ),
    ] = False,
    shutdown_grace: Annotated[
        float, typer.Option(help="Seconds calls in flight get to finish after Ctrl-C or SIGTERM.")
    ] = 30.0,
    shard: ShardOption = None,
    shards: ShardsOption = None,
    quiet: Quiet = False,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    debug: Debug = False,
    log_format: LogFormat = "text",
    log_file: LogFile = None,
) -> None:
    """Copy every snapshot a manifest lists; write a report; exit 0 only if all went well.

    The first Ctrl-C (or SIGTERM) stops sending and lets calls in flight finish; a second
    one cancels at once. Either way the report and journal are written (exit 130 or 143)
    and --resume continues the run later."""
    from batchcopy.ratestate import default_path
    from batchcopy.retry import RetryPolicy
    from batchcopy.settings import MIN_RATE, OnExists, Settings

    if metrics_file is not None and not dry_run:
        _unwritten_metrics["path"] = metrics_file
    _metrics_by_account["on"] = metrics_by_account
    _logging(verbose, debug, log_format, log_file)
    loaded = _load(manifest, source_region, target_region)
    chosen = _chosen_shard("run", shard, shards)
    if not 0 <= shutdown_grace < math.inf:
        message = f"batchcopy run: --shutdown-grace must be 0 seconds or more, got {shutdown_grace}"
        raise _fail(message, EXIT_USAGE)
    if MIN_RATE <= max_rate < rate < math.inf:  # values out of range are Settings' to refuse
        source = ctx.get_parameter_source("rate")
        if source is not None and source.name != "DEFAULT":
            message = (
                f"batchcopy run: --rate {rate:g} is above --max-rate {max_rate:g}; "
                f"give a --rate of at most {max_rate:g}"
            )
            raise _fail(message, EXIT_USAGE)
        # Only the default --rate is above the cap: keep the cap, start at it.
        if not quiet:
            from batchcopy.logs import say

            say(
                f"batchcopy run: starting at {max_rate:g} requests/s (--max-rate), "
                f"below the default --rate {rate:g}"
            )
        rate = max_rate
    if rate_state is not None and no_rate_state:
        raise _fail("batchcopy run: give --rate-state or --no-rate-state, not both", EXIT_USAGE)
    if not 0 < rate_state_max_age < math.inf:  # in days here: Settings would say seconds
        message = (
            f"batchcopy run: --rate-state-max-age must be days above 0, got {rate_state_max_age:g}"
        )
        raise _fail(message, EXIT_USAGE)
    rate_source = ctx.get_parameter_source("rate")
    try:
        exists = OnExists(on_exists)
    except ValueError:
        raise _fail("batchcopy run: --on-exists must be skip or fail", EXIT_USAGE) from None
    try:
        settings = Settings(
            rate=rate,
            rate_chosen=rate_source is not None and rate_source.name != "DEFAULT",
            rate_state=None if no_rate_state else rate_state or default_path(),
            rate_state_max_age=rate_state_max_age * 86400,
            burst=burst,
            max_rate=max_rate,
            adaptive=adaptive,
            max_in_flight=max_in_flight,
            retry=RetryPolicy(max_attempts=max_attempts, deadline=job_timeout),
            on_exists=exists,
            profile=profile,
            endpoint_url=endpoint_url,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
            wait=wait,
            wait_timeout=wait_timeout,
            tags=_parse_tags(tag or []),
            copy_tags=copy_tags,
            access=_access(accounts, role_name, external_id, role_session_name, role_duration),
        )
    except BatchcopyError as exc:
        raise _settings_error("run", exc) from None
    _check_metrics_file(metrics_file, "run")
    if loaded.per_account:
        _refuse_roleless("run", loaded.per_account, settings)
    part = _shard_part("run", loaded, chosen)

    if dry_run:
        _show_plan(part, settings, as_json=as_json)
    if resume is not None and report_dir is not None and resume != report_dir:
        raise _fail("batchcopy run: --resume already names the report folder", EXIT_USAGE)
    folder = resume or report_dir or _new_report_dir()

    async def go(progress: _Progress, control: RunControl) -> Report:
        from batchcopy.api import copy_snapshots

        return await copy_snapshots(
            loaded,
            settings,
            report_dir=folder,
            resume=resume is not None,
            force=force,
            control=control,
            on_result=progress.add,
            keep_results=False,
            shard=chosen,
        )

    _finish(
        _run_with_progress(go, part, quiet=quiet, grace=shutdown_grace, metrics_file=metrics_file),
        as_json=as_json,
        metrics_file=metrics_file,
    )


def demo(
    report_dir: Annotated[
        Path | None, typer.Option(help="Folder for the report (default: a new folder here).")
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(help="Also write the run's metrics here in Prometheus text format."),
    ] = None,
    quiet: Quiet = False,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    debug: Debug = False,
    log_format: LogFormat = "text",
    log_file: LogFile = None,
) -> None:
    """Run a demo migration against the built-in Lightsail emulator (no AWS account used)."""
    from batchcopy.demo import demo_manifest, run_demo

    if metrics_file is not None:
        _unwritten_metrics["path"] = metrics_file
    _logging(verbose, debug, log_format, log_file)
    _check_metrics_file(metrics_file, "demo")
    folder = report_dir or _new_report_dir()

    async def go(progress: _Progress, control: RunControl) -> Report:
        return await run_demo(report_dir=folder, on_result=progress.add, control=control)

    if not quiet:
        from batchcopy.logs import say

        say(
            "Demo: a local Lightsail emulator with throttling (eu-west-2), 5xx errors and lost "
            "responses switched on."
        )
    _finish(
        _run_with_progress(go, demo_manifest(), quiet=quiet, grace=10.0, metrics_file=metrics_file),
        as_json=as_json,
        metrics_file=metrics_file,
    )


def _new_report_dir() -> Path:
    # The process id keeps two runs started in the same second (cron) apart.
    return Path(f"batchcopy-report-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")


def _finish(report: Report, *, as_json: bool, metrics_file: Path | None = None) -> None:
    summary = report.summary
    _unwritten_metrics.pop("path", None)
    if metrics_file is not None:
        _write_metrics(report, metrics_file)
    # summary.json is written: whatever happens to stdout now, the process says what it says.
    with _stdout_may_close(summary.exit_code):
        _print_summary(summary, as_json=as_json)
    raise typer.Exit(summary.exit_code)
