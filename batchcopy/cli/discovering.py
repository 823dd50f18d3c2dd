"""The discover command: list snapshots with read calls and write a manifest that copies them."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

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
    _logging,
)
from batchcopy.cli.render import _plural
from batchcopy.errors import BatchcopyError, CredentialsError, LightsailError, SettingsError


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
    accounts: AccountsFile = None,
    org: Annotated[
        bool,
        typer.Option(
            "--org", help="List in every ACTIVE account of the organization (Organizations)."
        ),
    ] = False,
    ou: Annotated[
        list[str] | None,
        typer.Option(
            help="Only accounts under this organizational unit and its sub-units: an id "
            "(ou-..., or the root's r-...) or a path of names like /Prod/Web (repeatable)."
        ),
    ] = None,
    exclude_account: Annotated[
        list[str] | None, typer.Option(help="Leave this account out (repeatable).")
    ] = None,
    role_name: RoleName = None,
    external_id: ExternalId = None,
    role_session_name: RoleSessionName = None,
    role_duration: RoleDuration = 3600,
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

    Only read calls are made; run the manifest with `batchcopy run`. With --accounts, --org
    or --ou, each account is listed with its role assumed and its rows name it; an account
    that cannot be reached is left out, said on stderr, and the exit code is 1."""
    import anyio

    from batchcopy.accounts import ACCOUNT_RULE, is_account_id
    from batchcopy.discover import (
        FORMATS,
        DiscoverError,
        DiscoverOptions,
        accounts_to_list,
        write_manifest,
    )
    from batchcopy.discover import discover as discover_rows
    from batchcopy.sessions import roleless
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
            access=_access(accounts, role_name, external_id, role_session_name, role_duration),
        )
        for account in exclude_account or ():
            if not is_account_id(account):
                raise SettingsError(f"{account!r} is not {ACCOUNT_RULE}", field="exclude_account")
    except BatchcopyError as exc:
        raise _settings_error("discover", exc) from None
    unreached: dict[str, LightsailError] = {}

    async def go() -> list[dict[str, str]]:
        listed = await accounts_to_list(
            settings, organization=org, units=ou or (), exclude=exclude_account or ()
        )
        if (org or ou or accounts) and not listed:
            raise DiscoverError("no account to list: the organization or file names none left")
        if missing := await roleless(settings, listed):
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise DiscoverError(
                f"no role reaches account{'s' if len(missing) > 1 else ''} {shown}: give "
                "--role-name, or a role for each in the --accounts file"
            )
        chosen = dataclasses.replace(options, accounts=listed)
        return await discover_rows(chosen, settings, unreached=unreached)

    try:
        rows = anyio.run(go, backend="asyncio")
    except DiscoverError as exc:
        raise _fail(f"batchcopy discover: {exc}\nNo manifest was written.", EXIT_USAGE) from None
    except CredentialsError as exc:
        raise _fail(_unusable(exc), EXIT_CREDENTIALS) from None
    except SettingsError as exc:
        raise _settings_error("discover", exc) from None
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
    from batchcopy.logs import say

    if not quiet:
        regions = ", ".join(sorted({row["target_region"] for row in rows}))
        where = output or "stdout"
        say(f"batchcopy discover: {_plural(len(rows), 'job')} into {regions}, written to {where}")
    if unreached:
        for account, error in sorted(unreached.items()):
            say(f"batchcopy discover: account {account} left out: {error}")
        raise typer.Exit(1)
