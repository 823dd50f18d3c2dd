"""How batchcopy's typer commands parse their options and show their help.

An option that takes one value, or a flag, given twice is refused (typer keeps the last one,
silently); --metrics-file and --log-format are read before the real parse, so even an option
error is recorded and said as asked; flags show no value in --help.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.exceptions import TyperException
from typer.models import CommandFunctionType

from batchcopy.cli.exits import EXIT_USAGE, _fail, _metrics_kind, _unwritten_metrics


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
        _metrics_kind["kind"] = "prune" if command.name == "prune" else "run"


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
