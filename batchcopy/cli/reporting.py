"""`batchcopy report DIR`: write report.html again for an existing report folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batchcopy.cli.exits import EXIT_USAGE, _fail
from batchcopy.errors import ReportDirError


def report(
    directory: Annotated[
        Path,
        typer.Argument(metavar="DIR", help="A report folder: the one a run, prune or merge wrote."),
    ],
    open_page: Annotated[
        bool,
        typer.Option("--open", help="Open report.html in the browser, where there is one."),
    ] = False,
) -> None:
    """Write report.html in a report folder (one from an older version, or a merged run)."""
    import webbrowser

    from batchcopy.html_report import write_html_report

    try:
        path = write_html_report(directory)
    except ReportDirError as exc:
        raise _fail(f"batchcopy: {exc}", EXIT_USAGE) from None
    except OSError as exc:
        raise _fail(f"batchcopy: {directory}: cannot write report.html ({exc})", 1) from None
    typer.echo(str(path))
    # webbrowser.open is False where no browser can be found (a server, a container).
    if open_page and not webbrowser.open(path.resolve().as_uri()):
        typer.echo("batchcopy: no browser found here; open the file above", err=True)
