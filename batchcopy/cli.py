"""The ``batchcopy`` command line: parse options, call the library, map to exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batchcopy import __version__

__all__ = ["app", "emulator_main", "main"]

EXIT_USAGE = 2

app = typer.Typer(
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
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 0,
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
    except EmulatorSetupError as exc:
        typer.echo(f"batchcopy emulator: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    run_until_signalled(server, host=host, port=port)


app.command()(emulator)


def main() -> None:
    """Entry point of the ``batchcopy`` script."""
    app()


def emulator_main() -> None:
    """Entry point of ``python -m batchcopy.emulator``."""
    typer.run(emulator)
