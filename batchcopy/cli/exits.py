"""How a command ends: one line on stderr and an exit code.

Also what a run's --metrics-file says when the run fails before it starts, and output cut
short by a reader that went away.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from batchcopy.errors import (
    BatchcopyError,
    CredentialsError,
    EndpointUnreachableError,
    SettingsError,
)

if TYPE_CHECKING:
    from batchcopy.report import Report

EXIT_USAGE = 2
EXIT_CREDENTIALS = CredentialsError.exit_code


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
# Whose --metrics-file that is: a prune's holds a prune's figures, not a run's.
_metrics_kind: dict[str, str] = {"kind": "run"}
# run's --metrics-by-account, for the metrics written when the run ends, however it ends.
_metrics_by_account: dict[str, bool] = {"on": False}


def _metrics_not_run(path: Path, code: int) -> None:
    from batchcopy.metrics import check_metrics_file, write_not_run, write_prune_metrics

    # A --metrics-file that cannot be written was said already, or is the very failure.
    with contextlib.suppress(BatchcopyError, OSError):
        if _metrics_kind["kind"] == "prune":
            write_prune_metrics(None, check_metrics_file(path), exit_code=code)
        else:
            write_not_run(check_metrics_file(path), code)


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
        write_metrics(report.summary, metrics_file, by_account=_metrics_by_account["on"])
    except OSError as exc:
        reason = exc.strerror or exc
        message = f"batchcopy: --metrics-file {metrics_file}: not written ({reason})"
        from batchcopy.logs import say

        say(message, level="warning")


def _unusable(exc: CredentialsError) -> str:
    """The one line for exit 253: unusable credentials, or an endpoint nothing listens on."""
    if isinstance(exc, EndpointUnreachableError):
        return f"batchcopy: {exc}"
    return f"batchcopy: AWS credentials or configuration: {exc}"


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
