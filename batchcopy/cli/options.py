"""The options several commands share, and what they turn into: logging, regions, tags,
the loaded manifest."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from batchcopy.cli.exits import EXIT_CREDENTIALS, EXIT_USAGE, _fail, _unusable
from batchcopy.cli.render import _plural
from batchcopy.errors import BatchcopyError, ManifestError

if TYPE_CHECKING:
    from collections.abc import Collection

    from batchcopy.accounts import Access
    from batchcopy.manifest import Manifest
    from batchcopy.settings import Settings

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
AccountsFile = Annotated[
    Path | None,
    typer.Option(
        "--accounts",
        help="YAML or JSON list of accounts: account_id, and optionally role (a name or an "
        "ARN), external_id, name; overrides --role-name and --external-id per account.",
    ),
]
RoleName = Annotated[
    str | None,
    typer.Option(
        help="Role assumed in each account a row names (arn:aws:iam::ACCOUNT:role/NAME), "
        "e.g. OrganizationAccountAccessRole."
    ),
]
ExternalId = Annotated[str | None, typer.Option(help="External id the roles ask for.")]
RoleSessionName = Annotated[
    str | None, typer.Option(help="Session name of assumed roles (default: batchcopy-RUNID).")
]
RoleDuration = Annotated[
    int,
    typer.Option(help="Seconds assumed-role keys last (900-43200); renewed before they end."),
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


def _regions(values: list[str] | None) -> str | None:
    """Repeated --target-region values and a;b lists as one a;b list, each region once."""
    regions = [r.strip() for value in values or () for r in value.split(";") if r.strip()]
    return ";".join(dict.fromkeys(regions)) or None


def _load(
    manifest: str,
    source_region: str | None,
    target_regions: list[str] | None,
    *,
    unsent: str = "nothing was copied",
) -> Manifest:
    """The manifest, or exit 2 with every problem and ``unsent`` (what the command did not
    do: a prune refused for its manifest deleted nothing, it did not copy)."""
    from batchcopy.manifest import load_manifest

    target_region = _regions(target_regions)

    try:
        return load_manifest(manifest, source_region=source_region, target_region=target_region)
    except ManifestError as exc:
        count = _plural(len(exc.problems) + exc.more, "problem")
        raise _fail(f"{exc}\n{count} found; {unsent}.", EXIT_USAGE) from None


def _parse_tags(values: list[str]) -> tuple[tuple[str, str], ...]:
    tags = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise _fail(f"batchcopy run: --tag {value!r}: write it as KEY=VALUE", EXIT_USAGE)
        tags.append((key, val))
    return tuple(tags)


def _access(
    accounts: Path | None,
    role_name: str | None,
    external_id: str | None,
    role_session_name: str | None,
    role_duration: int,
) -> Access:
    """How the run reaches other accounts; SettingsError naming the option if not."""
    from batchcopy.accounts import Access, load_accounts_file

    return Access(
        role_name=role_name,
        external_id=external_id,
        session_name=role_session_name,
        duration=role_duration,
        accounts=load_accounts_file(accounts) if accounts is not None else {},
    )


def _refuse_roleless(command: str, accounts: Collection[str], settings: Settings) -> None:
    """Exit 2 before any copy when rows name accounts that no role reaches, or name the
    base credentials' own account while other rows name none (asking STS whose the base
    credentials are, if it must)."""
    import anyio

    from batchcopy.errors import CredentialsError
    from batchcopy.sessions import roleless, written_twice, written_twice_problem

    async def check() -> tuple[list[str], str | None]:
        return await roleless(settings, accounts), await written_twice(settings, accounts)

    try:
        missing, twice = anyio.run(check, backend="asyncio")
    except CredentialsError as exc:
        raise _fail(_unusable(exc), EXIT_CREDENTIALS) from None
    except BatchcopyError as exc:
        raise _fail(
            f"batchcopy {command}: cannot tell whose the credentials are: {exc}", 1
        ) from None
    if missing:
        shown = ", ".join(missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        raise _fail(
            f"batchcopy {command}: no role reaches account{'s' if len(missing) > 1 else ''} "
            f"{shown}: give --role-name, or a role for each in an --accounts file; nothing "
            "was sent",
            EXIT_USAGE,
        )
    if twice:
        raise _fail(
            f"batchcopy {command}: {written_twice_problem(twice)}; nothing was sent", EXIT_USAGE
        )
