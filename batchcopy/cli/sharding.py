"""Shards on the command line: --shard and --shards for run, plan and validate, and merge.

``--shard I/N`` runs shard I (from 0) of N; ``--shard auto`` reads it from the engine that
started the process (a Kubernetes Indexed Job with ``--shards N``, an AWS Batch array job)
and says on stderr what it read. ``merge`` joins the shards' report folders into the run's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from batchcopy.cli.exits import EXIT_USAGE, _fail, _stdout_may_close
from batchcopy.cli.render import _console, _plural, _print_summary
from batchcopy.errors import BatchcopyError

if TYPE_CHECKING:
    from batchcopy.manifest import Manifest
    from batchcopy.shards import Assignment, Shard

ShardOption = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="Run only shard I/N (I from 0) of the manifest's lanes (account, target region); "
        "auto: from JOB_COMPLETION_INDEX (with --shards N) or AWS_BATCH_JOB_ARRAY_INDEX and "
        "AWS_BATCH_JOB_ARRAY_SIZE.",
    ),
]
ShardsOption = Annotated[
    int | None,
    typer.Option(
        "--shards",
        help="How many shards: with --shard auto in a Kubernetes Indexed Job (its completions).",
    ),
]


def _chosen_shard(command: str, shard: str | None, shards: int | None) -> Shard | None:
    """The shard --shard and --shards name (None: the whole manifest); exit 2 if they
    name none, before any request."""
    from batchcopy.shards import Shard

    if shard is None:
        if shards is not None:
            raise _fail(f"batchcopy {command}: --shards needs --shard auto", EXIT_USAGE)
        return None
    try:
        if shard.strip() == "auto":
            return Shard.from_environment(shards)
        if shards is not None:
            raise _fail(
                f"batchcopy {command}: --shards goes with --shard auto; --shard I/N names "
                "the count itself",
                EXIT_USAGE,
            )
        return Shard.parse(shard)
    except BatchcopyError as exc:
        raise _fail(f"batchcopy {command}: --shard {shard}: {exc}", EXIT_USAGE) from None


def _shard_part(command: str, loaded: Manifest, shard: Shard | None) -> Manifest:
    """The part of ``loaded`` the shard runs, said on stderr (with --quiet too: the one
    line that names the shard in a log many shards share): which shard, from where, and
    its lanes and jobs; a shard with no lanes says so."""
    if shard is None:
        return loaded
    from batchcopy.logs import say
    from batchcopy.shards import select

    part, assignment = select(loaded, shard)
    lanes = assignment.lanes_in(shard.index)
    if not lanes:
        say(
            f"batchcopy {command}: shard {shard} from {shard.source} has no lanes (the "
            f"manifest has {_plural(len(assignment.shard_of), 'lane')} for "
            f"{_plural(shard.count, 'shard')}); nothing to do"
        )
    else:
        say(
            f"batchcopy {command}: shard {shard} from {shard.source}: "
            f"{_plural(len(lanes), 'lane')}, {_plural(part.total, 'job')} of {loaded.total}"
        )
    return part


# Lanes named per shard in the table; --json lists them all.
LANES_SHOWN = 6


def _some(lanes: list[str]) -> str:
    """The first lanes, and how many more: a fleet's shard holds hundreds."""
    more = len(lanes) - LANES_SHOWN
    shown = ", ".join(lanes[:LANES_SHOWN])
    return f"{shown}, ... and {more} more (--json lists them)" if more > 0 else shown


def _print_assignment(loaded: Manifest, assignment: Assignment, *, as_json: bool) -> None:
    """validate --shards: jobs and lanes per shard."""
    if as_json:
        body = {"manifest": loaded.name, "sha256": loaded.sha256, **assignment.to_json()}
        with _stdout_may_close(0):
            typer.echo(json.dumps(body, indent=2))
        return
    from rich.table import Table

    table = Table()
    table.add_column("shard")
    table.add_column("jobs", justify="right")
    table.add_column("lanes", justify="right")
    table.add_column("lanes (account/region)")
    for index in range(assignment.count):
        lanes = assignment.lanes_in(index)
        table.add_row(
            f"{index}/{assignment.count}",
            str(assignment.jobs_in(index)),
            str(len(lanes)),
            _some(lanes) or "(none: this shard has nothing to do)",
        )
    console = _console()
    with _stdout_may_close(0):
        console.print(
            f"{loaded.name}: {_plural(loaded.total, 'job')} in "
            f"{_plural(len(assignment.shard_of), 'lane')} over "
            f"{_plural(assignment.count, 'shard')} (assignment {assignment.digest[:12]}); "
            "nothing was sent to AWS."
        )
        console.print(table)


def merge(
    directories: Annotated[
        list[Path], typer.Argument(help="The shards' report folders, one per shard.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the merged report.")],
    allow_missing: Annotated[
        bool,
        typer.Option(
            "--allow-missing",
            help="Report the jobs of shards not given as not_started (exit 1) instead of refusing.",
        ),
    ] = False,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="The manifest the shards ran, to read missing shards' jobs from (default: "
            "the path their summaries name)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout.")
    ] = False,
) -> None:
    """Merge the report folders of a run's shards into the run's one report.

    Checks that they are the shards of one manifest and assignment, each once; writes
    summary.json, results.jsonl/csv (every job once, in manifest line order) and retry.csv;
    exits with the code a single run would have had."""
    from batchcopy.merge import merge_reports

    try:
        report = merge_reports(directories, out, allow_missing=allow_missing, manifest=manifest)
    except BatchcopyError as exc:
        raise _fail(f"batchcopy merge: {exc}", EXIT_USAGE) from None
    summary = report.summary
    text = (out / "summary.json").read_text(encoding="utf-8")  # with the shards it came from
    if missing := json.loads(text).get("missing_shards"):
        typer.echo(
            f"batchcopy merge: shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            "missing: their jobs are reported not_started (and listed in retry.csv)",
            err=True,
        )
    with _stdout_may_close(summary.exit_code):
        if as_json:  # as written
            typer.echo(text, nl=False)
        else:
            _print_summary(summary, as_json=False)
    raise typer.Exit(summary.exit_code)
