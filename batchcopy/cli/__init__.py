"""The ``batchcopy`` command line: parse options, call the library, render, map to exit codes.

Exit codes: 0 every job started, succeeded or was skipped; 1 some job failed or did not
start; 2 usage, manifest or report-folder error (no API call made); 253 AWS credentials or
configuration unusable, or an endpoint that refuses connections before answering once
(as the AWS CLI does). Whenever a run writes summary.json or a metrics file, they hold the
code the process exits with.

The package, one concern a module: ``command`` (how options are parsed, help for flags),
``exits`` (one line and an exit code), ``options`` (options the commands share),
``checking`` (validate, plan, doctor), ``copying`` (run, demo), ``discovering`` (discover),
``pruning`` (prune), ``reporting`` (report), ``sharding`` (--shard, merge),
``progress`` (the live display and the signal watch) and ``render`` (tables and JSON on
stdout). This module holds the app, the order of its commands, the emulator command (which
``python -m batchcopy.emulator`` also runs alone) and the entry points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batchcopy import __version__
from batchcopy.cli.checking import doctor, plan, validate
from batchcopy.cli.command import _App, _Group
from batchcopy.cli.copying import demo, run
from batchcopy.cli.discovering import discover
from batchcopy.cli.exits import EXIT_USAGE, _fail, _metrics_not_run, _unwritten_metrics
from batchcopy.cli.pruning import prune
from batchcopy.cli.reporting import report
from batchcopy.cli.sharding import merge

__all__ = ["app", "emulator_main", "main"]


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


def emulator(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on; 0 picks a free one.")
    ] = 0,
    seed: Annotated[
        Path | None,
        typer.Option(help="JSON seed file: regions, instances, disks, snapshots; or accounts."),
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


# In the order --help lists them.
app.command()(validate)
app.command()(run)
app.command()(plan)
app.command()(merge)
app.command()(discover)
app.command()(prune)
app.command()(report)
app.command()(demo)
app.command()(doctor)
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
