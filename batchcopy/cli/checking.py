"""The commands that only look: validate (no AWS call), plan (read-only calls) and doctor."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from batchcopy.cli.exits import (
    EXIT_CREDENTIALS,
    EXIT_USAGE,
    _fail,
    _settings_error,
    _stdout_may_close,
    _unusable,
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
    _refuse_roleless,
    _regions,
)
from batchcopy.cli.render import _console, _plural, _print_plan
from batchcopy.cli.sharding import ShardOption, ShardsOption, _chosen_shard, _shard_part
from batchcopy.errors import BatchcopyError, CredentialsError, unwrap

if TYPE_CHECKING:
    from batchcopy.manifest import Manifest
    from batchcopy.plan import Plan
    from batchcopy.settings import Settings


def validate(
    manifest: ManifestArg,
    source_region: SourceRegion = None,
    target_region: TargetRegion = None,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            help="Show how N shards split the manifest: jobs and lanes per shard.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Check a manifest without calling AWS: every problem at once, then jobs per region
    (with --shards, per shard)."""
    loaded = _load(manifest, source_region, target_region)
    if shards is not None:
        from batchcopy.cli.sharding import _print_assignment
        from batchcopy.shards import assignment_of

        try:
            assignment = assignment_of(loaded, shards)
        except BatchcopyError as exc:
            raise _fail(f"batchcopy validate: --shards {shards}: {exc}", EXIT_USAGE) from None
        _print_assignment(loaded, assignment, as_json=as_json)
        return
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


def plan(
    manifest: ManifestArg,
    source_region: SourceRegion = None,
    target_region: TargetRegion = None,
    profile: Profile = None,
    endpoint_url: EndpointUrl = None,
    read_timeout: ReadTimeout = 60.0,
    connect_timeout: ConnectTimeout = 10.0,
    accounts: AccountsFile = None,
    role_name: RoleName = None,
    external_id: ExternalId = None,
    role_session_name: RoleSessionName = None,
    role_duration: RoleDuration = 3600,
    shard: ShardOption = None,
    shards: ShardsOption = None,
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
    chosen = _chosen_shard("plan", shard, shards)
    try:
        settings = Settings(
            profile=profile,
            endpoint_url=endpoint_url,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
            access=_access(accounts, role_name, external_id, role_session_name, role_duration),
        )
    except BatchcopyError as exc:
        raise _settings_error("plan", exc) from None
    if loaded.per_account:
        _refuse_roleless("plan", loaded.per_account, settings)
    if chosen is not None:
        settings = dataclasses.replace(settings, user_agent_extra=chosen.tag)
    _show_plan(_shard_part("plan", loaded, chosen), settings, as_json=as_json)


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
    accounts: AccountsFile = None,
    role_name: RoleName = None,
    external_id: ExternalId = None,
    role_session_name: RoleSessionName = None,
    role_duration: RoleDuration = 3600,
    timeout: Annotated[float, typer.Option(help="Seconds each network check may take.")] = 15.0,
    as_json: AsJson = False,
) -> None:
    """Check that a run can work from here: credentials, Lightsail in each region, the report
    folder.

    One line per check, OK or FAIL with the fix; only reads are made. Each account a row
    (or --accounts) names: its role is assumed, its keys are that account's, Lightsail
    answers in its regions. STS is asked at
    --endpoint-url too (the emulator answers it) unless AWS_ENDPOINT_URL_STS is set. Exit 0
    when every check is OK, 1 otherwise."""
    import anyio

    from batchcopy.doctor import Check, run_checks
    from batchcopy.settings import Settings

    try:
        settings = Settings(
            profile=profile,
            endpoint_url=endpoint_url,
            read_timeout=timeout,
            access=_access(accounts, role_name, external_id, role_session_name, role_duration),
        )
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
