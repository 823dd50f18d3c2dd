"""The options several commands share, and what they turn into: logging, regions, tags,
the loaded manifest."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from batchcopy.cli.exits import EXIT_USAGE, _fail
from batchcopy.cli.render import _plural
from batchcopy.errors import ManifestError

if TYPE_CHECKING:
    from batchcopy.manifest import Manifest

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


def _regions(values: list[str] | None) -> str | None:
    """Repeated --target-region values and a;b lists as one a;b list, each region once."""
    regions = [r.strip() for value in values or () for r in value.split(";") if r.strip()]
    return ";".join(dict.fromkeys(regions)) or None


def _load(manifest: str, source_region: str | None, target_regions: list[str] | None) -> Manifest:
    from batchcopy.manifest import load_manifest

    target_region = _regions(target_regions)

    try:
        return load_manifest(manifest, source_region=source_region, target_region=target_region)
    except ManifestError as exc:
        count = _plural(len(exc.problems) + exc.more, "problem")
        raise _fail(f"{exc}\n{count} found; nothing was copied.", EXIT_USAGE) from None


def _parse_tags(values: list[str]) -> tuple[tuple[str, str], ...]:
    tags = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise _fail(f"batchcopy run: --tag {value!r}: write it as KEY=VALUE", EXIT_USAGE)
        tags.append((key, val))
    return tuple(tags)
