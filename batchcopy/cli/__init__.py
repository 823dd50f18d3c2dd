"""The ``batchcopy`` command line: parse options, call the library, render, map to exit codes.

Exit codes: 0 every job started, succeeded or was skipped; 1 some job failed or did not
start; 2 usage, manifest or report-folder error (no API call made); 253 AWS credentials or
configuration unusable, or an endpoint that refuses connections before answering once
(as the AWS CLI does). Whenever a run writes summary.json or a metrics file, they hold the
code the process exits with.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.exceptions import TyperException
from typer.models import CommandFunctionType

from batchcopy import __version__
from batchcopy.errors import (
    BatchcopyError,
    CredentialsError,
    EndpointUnreachableError,
    ManifestError,
    SettingsError,
    StorageError,
    unwrap,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from batchcopy.api import RunControl
    from batchcopy.jobs import JobResult
    from batchcopy.manifest import Manifest
    from batchcopy.plan import Plan
    from batchcopy.report import Report, Summary
    from batchcopy.settings import Settings

__all__ = ["app", "emulator_main", "main"]

EXIT_USAGE = 2
EXIT_CREDENTIALS = CredentialsError.exit_code
PLAIN_PROGRESS_EVERY = 5.0  # seconds between status lines when stderr is not a terminal


class _Command(TyperCommand):
    """A typer command that refuses an option given twice unless it is meant to repeat
    (typer keeps the last one, silently), and whose --help shows no value for flags."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if ctx.resilient_parsing:  # shell completion parses half-typed lines
            return super().parse_args(ctx, args)
        _note_metrics_file(self, args)
        if _option_value(args, "--log-format") == "json":
            from batchcopy.logs import use_stderr_format

            use_stderr_format("json")  # option errors too are JSON records then
        _refuse_repeats(self, ctx, args)
        try:
            return super().parse_args(ctx, args)
        except TyperException as exc:
            from batchcopy.logs import stderr_format

            if stderr_format() != "json":
                raise  # typer shows it, with the usage line
            message = getattr(exc, "format_message", exc.__str__)()
            raise _fail(f"{ctx.command_path}: {message}", getattr(exc, "exit_code", 2)) from None

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _no_flag_values(self.get_params(ctx))
        super().format_help(ctx, formatter)


class _Group(TyperGroup):
    """The batchcopy group: --help shows no value for flags, as its commands' does."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _no_flag_values(self.get_params(ctx))
        super().format_help(ctx, formatter)


class _App(typer.Typer):
    """A typer app whose commands are all _Command (typer has no app-wide default)."""

    def command(
        self, *args: Any, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


def _no_flag_values(params: list[Any]) -> None:
    """typer's help prints a type (<bool>, <int>) beside every option, also beside flags
    and counts, which take no value; an empty metavar prints nothing there."""
    for param in params:
        flag = isinstance(param, TyperOption) and (param.is_flag or param.count)
        if flag and param.metavar is None:
            param.metavar = ""


def _note_metrics_file(command: TyperCommand, args: list[str]) -> None:
    """Note a run's --metrics-file before its options are parsed: an option error then
    still records exit 2 there (see :func:`main`), not the previous run's figures."""
    if "--dry-run" in args or not any(p.name == "metrics_file" for p in command.params):
        return
    if (path := _option_value(args, "--metrics-file")) is not None:
        _unwritten_metrics["path"] = Path(path)


def _option_value(args: list[str], option: str) -> str | None:
    """The last value given to ``option`` in ``args`` (``--opt V`` or ``--opt=V``), read
    before typer parses them."""
    value = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == option and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(option + "="):
            value = arg.partition("=")[2]
    return value


def _refuse_repeats(command: TyperCommand, ctx: Any, args: list[str]) -> None:
    """Exit 2 if an option that takes one value, or a flag, is given more than once.

    click's parser lists a parameter once per occurrence; a second parse whose options
    collect every value instead of keeping the last one says what each was given."""
    parser = command.make_parser(ctx)
    for option in {*parser._long_opt.values(), *parser._short_opt.values()}:
        option.action = {"store": "append", "store_const": "append_const"}.get(
            option.action, option.action
        )
    try:
        values, _, order = parser.parse_args(args=list(args))
    except Exception:  # the real parse, just after, reports it in click's own words
        return
    counts = Counter(param.name for param in order)
    for param in order:
        if not isinstance(param, TyperOption) or param.multiple or param.count:
            continue
        if counts[param.name] < 2:
            continue
        long = next((o for o in param.opts if o.startswith("--")), param.opts[0])
        given = values.get(param.name, [])
        if param.is_flag and param.secondary_opts:
            name = f"{long}/{param.secondary_opts[0]}"
            shown = [long if value else param.secondary_opts[0] for value in given]
        else:
            name, shown = long, [] if param.is_flag else [str(value) for value in given]
        times = "twice" if counts[param.name] == 2 else f"{counts[param.name]} times"
        listed = f" ({', '.join(shown)})" if shown else ""
        raise _fail(f"{ctx.command_path}: {name} given {times}{listed}; give it once", EXIT_USAGE)


app = _App(
    cls=_Group,
    name="batchcopy",
    help="Copy Amazon Lightsail snapshots in bulk, across regions, fast and safely.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"batchcopy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Copy Amazon Lightsail snapshots in bulk, across regions, fast and safely."""


# -- shared options ---------------------------------------------------------------------------

ManifestArg = Annotated[
    str, typer.Argument(help="CSV, JSON or JSON Lines manifest of copy jobs; - reads stdin.")
]
SourceRegion = Annotated[
    str | None, typer.Option(help="Source region for rows that leave it empty.")
]
TargetRegion = Annotated[
    list[str] | None,
    typer.Option(
        help="Target region(s) for rows that leave it empty; several: repeat it, or "
        "eu-west-1;ap-south-1"
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
Profile = Annotated[str | None, typer.Option(help="AWS profile to use.")]
EndpointUrl = Annotated[
    str | None,
    typer.Option(envvar="AWS_ENDPOINT_URL_LIGHTSAIL", help="Lightsail endpoint to call."),
]
ReadTimeout = Annotated[float, typer.Option(help="Seconds to wait for an answer.")]
ConnectTimeout = Annotated[float, typer.Option(help="Seconds to wait for a connection.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]
Verbose = Annotated[
    int, typer.Option("--verbose", "-v", count=True, help="More log output: -v info, -vv debug.")
]
Debug = Annotated[
    bool, typer.Option("--debug", help="Also log botocore's requests (credentials redacted).")
]
LogFormat = Annotated[str, typer.Option(help="Log lines as text or json (JSON Lines).")]
LogFile = Annotated[Path | None, typer.Option(help="Write logs to this file instead of stderr.")]


def _logging(verbose: int, debug: bool, log_format: str, log_file: Path | None) -> None:
    if log_format not in ("text", "json"):
        raise _fail("batchcopy: --log-format must be text or json", EXIT_USAGE)
    from batchcopy.logs import setup_logging

    try:
        setup_logging(verbose=verbose, debug=debug, fmt=log_format, file=log_file)
    except OSError as exc:
        raise _fail(f"batchcopy: --log-file {log_file}: {exc.strerror}", EXIT_USAGE) from None


def _fail(message: str, code: int) -> typer.Exit:
    from batchcopy.logs import say  # a JSON record when logs are JSON Lines

    say(message, level="error")
    if code and (path := _unwritten_metrics.pop("path", None)) is not None:
        _metrics_not_run(path, code)
    return typer.Exit(code)


# run and demo put their --metrics-file here first: a run that fails before it starts
# (usage, manifest, credentials) still records its exit code there, and the file never
# shows the previous run's figures as this one's. Taken out once the metrics are written.
_unwritten_metrics: dict[str, Path] = {}


def _metrics_not_run(path: Path, code: int) -> None:
    from batchcopy.metrics import check_metrics_file, write_not_run

    # A --metrics-file that cannot be written was said already, or is the very failure.
    with contextlib.suppress(BatchcopyError, OSError):
        write_not_run(check_metrics_file(path), code)


def _unusable(exc: CredentialsError) -> str:
    """The one line for exit 253: unusable credentials, or an endpoint nothing listens on."""
    if isinstance(exc, EndpointUnreachableError):
        return f"batchcopy: {exc}"
    return f"batchcopy: AWS credentials or configuration: {exc}"


def _plural(count: int, word: str, plural: str = "") -> str:
    """``1 job``, ``2 jobs``; ``plural`` for words that take more than an s."""
    return f"{count} {word if count == 1 else plural or word + 's'}"


@contextlib.contextmanager
def _stdout_may_close(code: int) -> Iterator[None]:
    """Output to a reader that went away (``| head -1``) does not change the exit code:
    what was decided (and reported) stands, and stderr says the output was cut."""
    if sys.stdout is None:  # started with stdout closed (>&-): nothing to say it to
        yield
        return
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout once more at exit; to nowhere now, so that cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        from batchcopy.logs import say

        say(f"batchcopy: stdout was closed early (broken pipe); output cut, exit code {code}")
        raise typer.Exit(code) from None


def _regions(values: list[str] | None) -> str | None:
    """Repeated --target-region values and a;b lists as one a;b list, each region once."""
    regions = [r.strip() for value in values or () for r in value.split(";") if r.strip()]
    return ";".join(dict.fromkeys(regions)) or None


# The option that sets each setting, for errors the user can act on (Settings names fields).
_OPTION_OF = {"deadline": "--job-timeout"}


def _settings_error(command: str, exc: BatchcopyError, **options: str) -> typer.Exit:
    """Exit 2 with the error, naming the option as the user typed it; ``options`` maps a
    field to a command's own option name (doctor's --timeout sets read_timeout)."""
    if isinstance(exc, SettingsError) and exc.field:
        field = exc.field
        option = options.get(field) or _OPTION_OF.get(field) or "--" + field.replace("_", "-")
        return _fail(f"batchcopy {command}: {option} {exc.rule}", EXIT_USAGE)
    return _fail(f"batchcopy {command}: {exc}", EXIT_USAGE)


def _load(manifest: str, source_region: str | None, target_regions: list[str] | None) -> Manifest:
    from batchcopy.manifest import load_manifest

    target_region = _regions(target_regions)

    try:
        return load_manifest(manifest, source_region=source_region, target_region=target_region)
    except ManifestError as exc:
        count = _plural(len(exc.problems) + exc.more, "problem")
        raise _fail(f"{exc}\n{count} found; nothing was copied.", EXIT_USAGE) from None


# -- validate ---------------------------------------------------------------------------------


@app.command()
def validate(
    manifest: ManifestArg,
    source_region: SourceRegion = None,
    target_region: TargetRegion = None,
    as_json: AsJson = False,
) -> None:
    """Check a manifest without calling AWS: every problem at once, then jobs per region."""
    loaded = _load(manifest, source_region, target_region)
    if as_json:
        body = {
            "manifest": loaded.name,
            "sha256": loaded.sha256,
            "total": loaded.total,
            "per_region": dict(loaded.per_region),
        }
        with _stdout_may_close(0):
            typer.echo(json.dumps(body, indent=2))
        return
    from rich.table import Table

    table = Table()
    table.add_column("target region")
    table.add_column("jobs", justify="right")
    for region, count in loaded.per_region.items():
        table.add_row(region, str(count))
    console = _console()
    with _stdout_may_close(0):
        jobs = _plural(loaded.total, "job")
        console.print(f"{loaded.name}: {jobs}, valid; nothing was sent to AWS.")
        console.print(table)


# -- run --------------------------------------------------------------------------------------


@app.command()
def run(
    ctx: typer.Context,
    manifest: ManifestArg,
    source_region: SourceRegion = None,
    target_region: TargetRegion = None,
    rate: Annotated[
        float, typer.Option(help="CopySnapshot requests per second, per target region.")
    ] = 5.0,
    burst: Annotated[int, typer.Option(help="Requests allowed at once after a quiet spell.")] = 5,
    max_rate: Annotated[
        float,
        typer.Option(
            help="The adaptive rate never goes above this (requests/s); by default a safety "
            "cap only."
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
            help="The most jobs open at once per target region; below it, the cap follows the rate."
        ),
    ] = 128,
    max_attempts: Annotated[int, typer.Option(help="Tries per job before it fails.")] = 10,
    job_timeout: Annotated[
        float, typer.Option(help="Seconds from a job's first try after which it is not retried.")
    ] = 900.0,
    on_exists: Annotated[
        str, typer.Option(help="A target that already exists (same source): skip or fail.")
    ] = "skip",
    report_dir: Annotated[
        Path | None,
        typer.Option(help="Folder for summary.json, results.jsonl, results.csv (default: new)."),
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            help="Also write the run's metrics to this file in Prometheus text format, for "
            "node_exporter's textfile collector (name it *.prom); the folder must exist."
        ),
    ] = None,
    profile: Profile = None,
    endpoint_url: EndpointUrl = None,
    read_timeout: ReadTimeout = 60.0,
    connect_timeout: ConnectTimeout = 10.0,
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
        bool, typer.Option("--force", help="Resume even if the journal is for another manifest.")
    ] = False,
    shutdown_grace: Annotated[
        float, typer.Option(help="Seconds calls in flight get to finish after Ctrl-C or SIGTERM.")
    ] = 30.0,
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
    from batchcopy.retry import RetryPolicy
    from batchcopy.settings import MIN_RATE, OnExists, Settings

    if metrics_file is not None and not dry_run:
        _unwritten_metrics["path"] = metrics_file
    _logging(verbose, debug, log_format, log_file)
    loaded = _load(manifest, source_region, target_region)
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
    try:
        settings = Settings(
            rate=rate,
            burst=burst,
            max_rate=max_rate,
            adaptive=adaptive,
            max_in_flight=max_in_flight,
            retry=RetryPolicy(max_attempts=max_attempts, deadline=job_timeout),
            on_exists=OnExists(on_exists),
            profile=profile,
            endpoint_url=endpoint_url,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
            wait=wait,
            wait_timeout=wait_timeout,
            tags=_parse_tags(tag or []),
            copy_tags=copy_tags,
        )
    except ValueError:
        raise _fail("batchcopy run: --on-exists must be skip or fail", EXIT_USAGE) from None
    except BatchcopyError as exc:
        raise _settings_error("run", exc) from None
    _check_metrics_file(metrics_file, "run")

    if dry_run:
        _show_plan(loaded, settings, as_json=as_json)
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
        )

    _finish(
        _run_with_progress(
            go, loaded, quiet=quiet, grace=shutdown_grace, metrics_file=metrics_file
        ),
        as_json=as_json,
        metrics_file=metrics_file,
    )


@app.command()
def plan(
    manifest: ManifestArg,
    source_region: SourceRegion = None,
    target_region: TargetRegion = None,
    profile: Profile = None,
    endpoint_url: EndpointUrl = None,
    read_timeout: ReadTimeout = 60.0,
    connect_timeout: ConnectTimeout = 10.0,
    as_json: AsJson = False,
    verbose: Verbose = 0,
    debug: Debug = False,
    log_format: LogFormat = "text",
    log_file: LogFile = None,
) -> None:
    """Check a manifest against Lightsail with read-only calls and show what a run would do.

    The same as `run --dry-run`. Exit 0 when every job would go through, 1 otherwise."""
    from batchcopy.settings import Settings

    _logging(verbose, debug, log_format, log_file)
    loaded = _load(manifest, source_region, target_region)
    try:
        settings = Settings(
            profile=profile,
            endpoint_url=endpoint_url,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
        )
    except BatchcopyError as exc:
        raise _settings_error("plan", exc) from None
    _show_plan(loaded, settings, as_json=as_json)


def _show_plan(manifest: Manifest, settings: Settings, *, as_json: bool) -> None:
    """Make the plan (reads only), print it, and exit 0 if it has no problem, else 1."""
    import anyio

    from batchcopy.plan import make_plan

    async def go() -> Plan:
        return await make_plan(manifest.jobs(), settings)

    try:
        try:
            made = anyio.run(go, backend="asyncio")
        except BaseExceptionGroup as group:
            if (error := unwrap(group, BatchcopyError)) is None:
                raise
            raise error from None
    except CredentialsError as exc:
        raise _fail(_unusable(exc), EXIT_CREDENTIALS) from None
    except BatchcopyError as exc:
        raise _fail(f"batchcopy: {exc}", EXIT_USAGE) from None
    with _stdout_may_close(0 if made.ok else 1):
        _print_plan(manifest, made, as_json=as_json)
    raise typer.Exit(0 if made.ok else 1)


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


# -- discover ---------------------------------------------------------------------------------


@app.command()
def discover(
    source_region: Annotated[
        list[str], typer.Option(help="Region to list snapshots in; repeat for several.")
    ],
    target_region: Annotated[
        list[str],
        typer.Option(help="Region to copy into; repeat for several (one row per region)."),
    ],
    kind: Annotated[str, typer.Option(help="Snapshots of instance, disk or all.")] = "all",
    include: Annotated[
        list[str] | None,
        typer.Option(help="Only sources whose name matches this glob (repeatable)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="Leave out sources whose name matches this glob (repeatable)."),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=VALUE (or KEY, any value) a source must be tagged with; repeatable, "
            "all must match. Automatic snapshots: the instance's or disk's tags."
        ),
    ] = None,
    auto: Annotated[
        str,
        typer.Option(help="Automatic snapshots too: none, latest, all or a date YYYY-MM-DD."),
    ] = "none",
    manual: Annotated[
        bool, typer.Option(help="List manual snapshots; --no-manual: automatic ones only.")
    ] = True,
    name_template: Annotated[
        str | None,
        typer.Option(
            help="Target names from {source} {source_region} {target_region} {kind} {date} "
            "(default {source}-{target_region}; automatic: {source}-auto-{date}-{target_region})"
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the manifest to this file, not stdout."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="Manifest format: csv or json.")] = "csv",
    profile: Profile = None,
    endpoint_url: EndpointUrl = None,
    read_timeout: ReadTimeout = 60.0,
    connect_timeout: ConnectTimeout = 10.0,
    quiet: Quiet = False,
    verbose: Verbose = 0,
    debug: Debug = False,
    log_format: LogFormat = "text",
    log_file: LogFile = None,
) -> None:
    """List the snapshots in the source regions and write a manifest that copies them.

    Only read calls are made; run the manifest with `batchcopy run`."""
    import anyio

    from batchcopy.discover import FORMATS, DiscoverError, DiscoverOptions, write_manifest
    from batchcopy.discover import discover as discover_rows
    from batchcopy.settings import Settings

    _logging(verbose, debug, log_format, log_file)
    if fmt not in FORMATS:
        raise _fail(f"batchcopy discover: --format must be csv or json, not {fmt!r}", EXIT_USAGE)
    try:
        options = DiscoverOptions(
            source_regions=source_region,
            target_regions=target_region,
            kind=kind,
            include=include or (),
            exclude=exclude or (),
            tags=tag or (),
            auto=auto,
            manual=manual,
            name_template=name_template,
        )
        settings = Settings(
            profile=profile,
            endpoint_url=endpoint_url,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
        )
    except BatchcopyError as exc:
        raise _settings_error("discover", exc) from None
    try:
        rows = anyio.run(discover_rows, options, settings, backend="asyncio")
    except DiscoverError as exc:
        raise _fail(f"batchcopy discover: {exc}\nNo manifest was written.", EXIT_USAGE) from None
    except CredentialsError as exc:
        raise _fail(_unusable(exc), EXIT_CREDENTIALS) from None
    except BatchcopyError as exc:  # a listing call failed, after retries
        raise _fail(f"batchcopy discover: listing failed: {exc}", 1) from None
    except KeyboardInterrupt:
        raise _fail("batchcopy discover: interrupted; no manifest was written", 130) from None
    if output is None:
        if sys.stdout is None:
            raise _fail("batchcopy discover: stdout is closed; give --output FILE", EXIT_USAGE)
        with _stdout_may_close(1):  # the manifest was cut short: not a usable result
            write_manifest(rows, sys.stdout, fmt)
    else:
        try:
            with output.open("w", newline="") as out:
                write_manifest(rows, out, fmt)
        except OSError as exc:
            message = f"batchcopy discover: --output {output}: {exc.strerror or exc}"
            raise _fail(message, EXIT_USAGE) from None
    if not quiet:
        regions = ", ".join(sorted({row["target_region"] for row in rows}))
        where = output or "stdout"
        from batchcopy.logs import say

        say(f"batchcopy discover: {_plural(len(rows), 'job')} into {regions}, written to {where}")


@app.command()
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


def _parse_tags(values: list[str]) -> tuple[tuple[str, str], ...]:
    tags = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise _fail(f"batchcopy run: --tag {value!r}: write it as KEY=VALUE", EXIT_USAGE)
        tags.append((key, val))
    return tuple(tags)


def _new_report_dir() -> Path:
    # The process id keeps two runs started in the same second (cron) apart.
    return Path(f"batchcopy-report-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")


def _run_with_progress(
    go: Callable[[_Progress, RunControl], Awaitable[Report]],
    manifest: Manifest,
    *,
    quiet: bool,
    grace: float,
    metrics_file: Path | None = None,
) -> Report:
    """Run ``go`` under the progress display and the signal watch; return its report.

    A run that ends with an error exits with the code its report (if one was written: the
    run had started) says; that report's metrics are written too."""
    import anyio

    from batchcopy.api import RunControl

    controls: list[RunControl] = []

    def failed(message: str, code: int) -> typer.Exit:
        report = controls[0].report if controls else None
        if report is None:
            return _fail(message, code)
        if metrics_file is not None:
            _unwritten_metrics.pop("path", None)
            _write_metrics(report, metrics_file)
        return _fail(message, report.exit_code)

    async def main() -> Report:
        control = RunControl(grace=grace)
        controls.append(control)
        progress = _Progress(manifest, control, quiet=quiet)
        async with anyio.create_task_group() as tg, progress:
            tg.start_soon(_watch_signals, control, progress)
            tg.start_soon(progress.keep_fresh)
            report = await go(progress, control)
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
        raise failed(_unusable(exc), EXIT_CREDENTIALS) from None
    except ManifestError as exc:
        # It passed validation before the run: it changed while the run was reading it.
        message = (
            f"batchcopy: the manifest changed during the run:\n{exc}\n"
            "The report holds what was done; fix the manifest and run again with --resume."
        )
        raise failed(message, 1) from None
    except StorageError as exc:  # a full disk mid-run: what was sent is in the journal
        raise failed(f"batchcopy: {exc}", 1) from None
    except BatchcopyError as exc:
        raise failed(f"batchcopy: {exc}", EXIT_USAGE) from None


async def _watch_signals(control: RunControl, progress: _Progress) -> None:
    """First SIGINT/SIGTERM: stop gently; a second one: cancel now."""
    import anyio

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if control.stopping.is_set():
                progress.say("batchcopy: cancelling now; writing the report and journal")
                control.cancel(128 + signum)
                return
            name = signal.Signals(signum).name
            again = "press Ctrl-C" if signum == signal.SIGINT else f"send {name}"
            progress.say(
                f"batchcopy: stopping; calls in flight get up to {control.grace:g} s "
                f"({again} again to cancel now)"
            )
            control.stop(128 + signum)


def _check_metrics_file(path: Path | None, command: str) -> None:
    """Refuse a --metrics-file that cannot be written, before any API call."""
    if path is None:
        return
    from batchcopy.metrics import check_metrics_file  # loads prometheus_client only if asked

    try:
        check_metrics_file(path)
    except BatchcopyError as exc:
        raise _fail(f"batchcopy {command}: {exc}", EXIT_USAGE) from None


def _write_metrics(report: Report, metrics_file: Path) -> None:
    from batchcopy.metrics import write_metrics

    # The copies are done and reported: a metrics file that fails now is said, not fatal.
    try:
        write_metrics(report.summary, metrics_file)
    except OSError as exc:
        reason = exc.strerror or exc
        message = f"batchcopy: --metrics-file {metrics_file}: not written ({reason})"
        from batchcopy.logs import say

        say(message, level="warning")


def _finish(report: Report, *, as_json: bool, metrics_file: Path | None = None) -> None:
    summary = report.summary
    _unwritten_metrics.pop("path", None)
    if metrics_file is not None:
        _write_metrics(report, metrics_file)
    # summary.json is written: whatever happens to stdout now, the process says what it says.
    with _stdout_may_close(summary.exit_code):
        _print_summary(summary, as_json=as_json)
    raise typer.Exit(summary.exit_code)


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
        if summary.rates:
            rates = ", ".join(f"{r} {v:g}/s" for r, v in summary.rates.items())
            console.print(f"Rates at the end: {rates}", highlight=False)
        # A run that finished nothing (stopped at once) has no rate to speak of.
        speed = f"; {summary.jobs_per_second:.1f} jobs/s" if summary.finished else ""
        console.print(
            f"{_plural(summary.attempts, 'copy request')}, {summary.throttles} throttled, "
            f"{summary.reconciled} reconciled after lost answers{speed}. "
            f"Run {summary.run_id}, report: {summary.report_dir}",
            highlight=False,
        )
        if summary.tag_failures:
            # The table shows these as started or skipped: say why the run exits 1.
            copies = _plural(summary.tag_failures, "copy", "copies")
            console.print(
                f"{copies} could not be tagged (tag_error in the results; the copies stand): "
                f"run again with --resume {summary.report_dir} to tag them.",
                highlight=False,
            )


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


class _Progress:
    """Progress on stderr: on a terminal, live bars (one per target region and one overall:
    done/total, jobs/s, the region's current request rate, copy requests sent and accepted,
    throttles, ETA); otherwise a plain status line every few seconds, for CI logs and cron
    mail. With JSON logs, the status lines and one-off messages are JSON records too.

    Requests sent, copies accepted and throttles are read from the run as they happen
    (:attr:`RunControl.counters`), not from finished jobs, so a long ``--wait`` or a throttle
    storm shows while no job has finished yet."""

    def __init__(self, manifest: Manifest, control: RunControl, *, quiet: bool) -> None:
        from batchcopy.logs import stderr_format

        self._total = manifest.total
        self._per_region = dict(manifest.per_region)
        self._control = control
        self._quiet = quiet
        self._json = stderr_format() == "json"
        self._console = _console(stderr=True)
        self._live = not quiet and not self._json and self._console.is_terminal
        self._counts: Counter[str] = Counter()
        self._done: Counter[str] = Counter()  # by target region
        self._started = time.monotonic()
        self._last_line = self._started
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    async def __aenter__(self) -> _Progress:
        if self._live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            bars = Progress(
                TextColumn("{task.description:<14}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                TextColumn("ETA {task.fields[eta]}"),
                console=self._console,
                transient=False,
            )
            self._tasks = {
                region: bars.add_task(region, total=count, note="", eta=_eta_text(None))
                for region, count in self._per_region.items()
            }
            self._tasks[""] = bars.add_task("all", total=self._total, note="", eta=_eta_text(None))
            bars.start()
            self._bars = bars
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._notes()
            self._bars.stop()
        elif not self._quiet and exc[0] is None:  # an error ends a run in its one line
            self._line()

    async def keep_fresh(self) -> None:
        """Refresh counts, rates and jobs/s every second, and print a plain line when it is
        due, whether or not jobs are finishing (a long --wait stays visible)."""
        import anyio

        while True:
            await anyio.sleep(1.0)
            if self._bars is not None:
                self._notes()
            elif not self._quiet and time.monotonic() - self._last_line >= PLAIN_PROGRESS_EVERY:
                self._line()

    def add(self, result: JobResult) -> None:
        region = result.job.target_region
        self._counts[result.status] += 1
        self._done[region] += 1
        if self._bars is not None:
            self._bars.advance(self._tasks[region])
            self._bars.advance(self._tasks[""])

    def say(self, message: str) -> None:
        """A one-off message that does not garble the live display."""
        if self._bars is not None:
            self._bars.console.print(message, highlight=False)
        else:
            from batchcopy.logs import say

            say(message, level="warning")

    def _notes(self) -> None:
        assert self._bars is not None
        elapsed = max(1e-9, time.monotonic() - self._started)
        rates = self._control.rates
        counters = self._control.counters
        for region, task in self._tasks.items():
            if not region:
                continue
            counts = counters.get(region)
            done = self._done[region]
            copying = counts.copying if counts else 0
            rate = f"{rates[region]:6.1f} req/s" if region in rates else " " * 12
            note = f"{done / elapsed:6.1f} jobs/s  {rate}  " + _activity(
                counts.sent if counts else 0,
                counts.accepted if counts else 0,
                copying,
                counts.throttled if counts else 0,
            )
            eta = self._eta(done, self._per_region[region], copying, elapsed)
            self._bars.update(task, note=note, eta=self._eta_text(eta))
        done, copying = self._done.total(), sum(c.copying for c in counters.values())
        note = f"{done / elapsed:6.1f} jobs/s  {self._counts['failed']} failed  " + _activity(
            sum(c.sent for c in counters.values()),
            sum(c.accepted for c in counters.values()),
            copying,
            sum(c.throttled for c in counters.values()),
        )
        eta = self._eta(done, self._total, copying, elapsed)
        self._bars.update(self._tasks[""], note=note, eta=self._eta_text(eta))

    def _line(self) -> None:
        from batchcopy.logs import say

        self._last_line = now = time.monotonic()
        elapsed = max(1e-9, now - self._started)
        counters = self._control.counters
        done = self._done.total()
        sent = sum(c.sent for c in counters.values())
        accepted = sum(c.accepted for c in counters.values())
        copying = sum(c.copying for c in counters.values())
        throttled = sum(c.throttled for c in counters.values())
        failed = self._counts["failed"]
        eta = self._eta(done, self._total, copying, elapsed)
        copying_note = f" ({copying} copying)" if copying else ""
        say(
            f"batchcopy: {done} of {self._total} done, {sent} sent, {accepted} accepted"
            f"{copying_note}, {failed} failed, {throttled} throttled, "
            f"{done / elapsed:.1f} jobs/s, ETA {self._eta_text(eta)}",
            logger="batchcopy.progress",
            fields={
                "done": done,
                "total": self._total,
                "failed": failed,
                "sent": sent,
                "accepted": accepted,
                "copying": copying,
                "throttled": throttled,
                "jobs_per_second": round(done / elapsed, 2),
                "eta_seconds": None if eta is None else round(eta),
                "stopping": self._control.stopping.is_set(),
                "regions": {
                    region: {"done": self._done[region], **dataclasses.asdict(counts)}
                    for region, counts in counters.items()
                },
            },
        )

    def _eta(self, done: int, total: int, copying: int, elapsed: float) -> float | None:
        """None once the run is stopping: what is left will not be done at any pace."""
        return None if self._control.stopping.is_set() else _eta(done, total, copying, elapsed)

    def _eta_text(self, eta: float | None) -> str:
        return "stopping" if self._control.stopping.is_set() else _eta_text(eta)


def _activity(sent: int, accepted: int, copying: int, throttled: int) -> str:
    copying_note = f" ({copying} copying)" if copying else ""
    return f"{sent} sent  {accepted} accepted{copying_note}  {throttled} throttled"


def _eta(done: int, total: int, copying: int, elapsed: float) -> float | None:
    """Seconds left at the run's average pace of finished jobs so far; None before any job
    has finished, and while copies being followed (``--wait``) make up half or more of what
    is left: when those end is up to Lightsail, not to the pace of the run (one copy left
    after 400 fast ones would otherwise be "a second" for minutes)."""
    left = total - done
    if left <= 0:
        return 0.0
    if done == 0 or 2 * copying >= left:
        return None
    return left * elapsed / done


def _eta_text(eta: float | None) -> str:
    if eta is None:
        return "--:--"
    minutes, seconds = divmod(round(eta), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


# -- doctor -----------------------------------------------------------------------------------


@app.command()
def doctor(
    manifest: Annotated[
        str | None,
        typer.Argument(help="Manifest whose source and target regions to check; - reads stdin."),
    ] = None,
    source_region: SourceRegion = None,
    target_region: TargetRegion = None,
    region: Annotated[
        list[str] | None,
        typer.Option(
            help="Region to check; repeat for several (default: the manifest's, else us-east-1)."
        ),
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            help="The report folder a run would be given, as in `run --report-dir`; it is "
            "not created (default: a new folder here)."
        ),
    ] = None,
    profile: Profile = None,
    endpoint_url: EndpointUrl = None,
    timeout: Annotated[float, typer.Option(help="Seconds each network check may take.")] = 15.0,
    as_json: AsJson = False,
) -> None:
    """Check that a run can work from here: credentials, Lightsail in each region, the report
    folder.

    One line per check, OK or FAIL with the fix; only reads are made. STS is asked at
    --endpoint-url too (the emulator answers it) unless AWS_ENDPOINT_URL_STS is set. Exit 0
    when every check is OK, 1 otherwise."""
    import anyio

    from batchcopy.doctor import Check, run_checks
    from batchcopy.settings import Settings

    try:
        settings = Settings(profile=profile, endpoint_url=endpoint_url, read_timeout=timeout)
    except BatchcopyError as exc:
        raise _settings_error("doctor", exc, read_timeout="--timeout") from None

    async def go() -> list[Check]:
        return await run_checks(
            settings,
            regions=region or (),
            manifest=manifest,
            source_region=source_region,
            target_region=_regions(target_region),
            report_dir=report_dir,
            per_check=timeout,
        )

    try:
        checks = anyio.run(go, backend="asyncio")
    except KeyboardInterrupt:
        raise _fail("batchcopy doctor: interrupted", 130) from None
    ok = all(check.ok for check in checks)
    if as_json:
        typer.echo(json.dumps({"ok": ok, "checks": [c.to_json() for c in checks]}, indent=2))
    else:
        for check in checks:
            typer.echo(str(check))
    raise typer.Exit(0 if ok else 1)


# -- emulator ---------------------------------------------------------------------------------


def emulator(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on; 0 picks a free one.")
    ] = 0,
    seed: Annotated[
        Path | None, typer.Option(help="JSON seed file: regions, instances, disks, snapshots.")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Start with the built-in demo data.")
    ] = False,
    faults: Annotated[
        Path | None, typer.Option(help="JSON fault settings: throttling, latency, errors, drops.")
    ] = None,
) -> None:
    """Run a local Lightsail emulator; prints its URL first, runs until interrupted."""
    from batchcopy.emulator import EmulatorSetupError, build_emulator, run_until_signalled

    try:
        server = build_emulator(seed=seed, demo=demo, faults=faults)
        run_until_signalled(server, host=host, port=port)
    except EmulatorSetupError as exc:
        raise _fail(f"batchcopy emulator: {exc}", EXIT_USAGE) from None


app.command()(emulator)


def main() -> None:
    """Entry point of the ``batchcopy`` script and of ``python -m batchcopy``; both are
    called batchcopy in help and shell completion."""
    try:
        app(prog_name="batchcopy")
    except SystemExit as exit:
        # An option typer refused before the command ran: the metrics file says so too.
        code = exit.code if isinstance(exit.code, int) else 1
        if code and (path := _unwritten_metrics.pop("path", None)) is not None:
            _metrics_not_run(path, code)
        raise


def emulator_main() -> None:
    """Entry point of ``python -m batchcopy.emulator``."""
    typer.run(emulator)
