"""CSV manifests: the header's separator and columns, then one row per record."""

from __future__ import annotations

import csv
import difflib
from collections.abc import Iterator
from typing import BinaryIO

from batchcopy.manifest.fields import (
    _FIELDS,
    _OFFERED,
    _REGIONS,
    _SOURCES,
    _column,
    _Issue,
    _quote,
    _Row,
    _words,
)
from batchcopy.manifest.files import _BOM, _MAX_LINE_BYTES, _human, _Lines

# The CSV separators a header may use, first preferred (a tie goes to ","), as messages say them.
_DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs"}
_QUOTE_REGIONS = (
    "; in a file with semicolons between columns, quote a cell that lists several regions: "
    '"eu-west-1;ap-south-1"'
)


def _delimiter_of(file: BinaryIO) -> str:
    """The CSV separator the header uses: "," unless ";" or a tab names more of its columns.

    Spreadsheets write ";" in many locales and tabs as "text". Only the header line decides,
    never a row: a target_region cell may itself hold ";" (several regions). The file is
    left where it was, so every byte is still read (and hashed) by the parser.
    """
    head = file.read(_MAX_LINE_BYTES)
    file.seek(0)
    for raw in head.removeprefix(_BOM).splitlines():
        if raw.strip(b" \t,;"):  # blank rows (a spreadsheet's ";;;" too) come before it
            header = raw.decode(errors="replace")
            return max(_DELIMITERS, key=lambda delimiter: _known(header, delimiter))
    return ","


def _known(header: str, delimiter: str) -> tuple[int, bool]:
    """How many fields a header names when split at ``delimiter``, and whether it splits."""
    try:
        cells = next(csv.reader([header], delimiter=delimiter), [])
    except csv.Error:
        return 0, False
    return sum(_column(cell) is not None for cell in cells), len(cells) > 1


def _csv_items(lines: _Lines, defaulted: frozenset[str], delimiter: str) -> Iterator[_Row | _Issue]:
    # The limit is process-wide, so it is set on every read: it bounds memory when a quote is
    # left open, and lets a long cell be measured and reported rather than crash the reader.
    csv.field_size_limit(_MAX_LINE_BYTES)
    columns: list[str | None] | None = None  # each column's field, once the header is read
    for line, cells in _csv_records(lines, delimiter):
        if isinstance(cells, _Issue):
            yield cells
            if columns is None:
                return  # without a header there is nothing to check the rows against
        elif not "".join(cells).strip():
            continue  # blank rows, including a spreadsheet's ",,,"
        elif columns is None:
            columns, issues = _csv_header(line, cells, defaulted, delimiter)
            yield from issues
            if not any(columns) or any(issue.field in _FIELDS for issue in issues):
                return  # no column known, or one missing or doubled: every row would say so
        else:
            values: dict[str, object] = {}
            for index, cell in enumerate(cells):
                field = columns[index] if index < len(columns) else None
                if field:
                    values[field] = cell
                elif field is None and cell.strip():
                    message = f"cell {index + 1} has a value but no column name"
                    yield _Issue(line, "", message + _QUOTE_REGIONS * (delimiter == ";"))
            yield _Row(line, values)


def _csv_records(lines: _Lines, delimiter: str) -> Iterator[tuple[int, list[str] | _Issue]]:
    """CSV records with the line each starts on, or the fault that spoiled one."""
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        start, lines.fault = lines.count + 1, None
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, lines.fault or _Issue(start, "", _csv_trouble(str(exc)))
            if str(exc).startswith("field larger than field limit"):
                return  # the quoting is lost track of: what follows would be misread
            continue
        yield start, lines.fault or cells


def _csv_trouble(message: str) -> str:
    if message.startswith("field larger than field limit"):
        return (
            f"a cell over {_human(_MAX_LINE_BYTES)} long; is a quote left open? (read no further)"
        )
    if message.startswith("new-line character seen"):
        return r"a carriage return (\r) inside a row; end lines with \n or \r\n"
    return f"not valid CSV: {message}"


def _csv_header(
    line: int, cells: list[str], defaulted: frozenset[str], delimiter: str
) -> tuple[list[str | None], list[_Issue]]:
    """Each column's field ("" if unknown, None if unnamed), and the header's problems."""
    columns: list[str | None] = []
    issues: list[_Issue] = []
    seen: dict[str, str] = {}
    unknown: list[str] = []
    for cell in map(str.strip, cells):
        field = _column(cell)
        if not cell:
            columns.append(None)  # unnamed: a value under it is reported
        elif field and field not in seen:
            seen[field] = cell
            columns.append(field)
        else:
            columns.append("")  # reported once here, then ignored
            if field:
                message = f"two columns ({seen[field]}, {cell}); keep one"
                issues.append(_Issue(line, field, message))
            else:
                unknown.append(cell)
    if unknown:
        message = _unknown_columns(unknown, delimiter, len(cells), anything_known=bool(seen))
        issues.insert(0, _Issue(line, "header", message))
        if not seen:
            return columns, issues  # not a manifest header: listing every field again is noise
    for field in ("target_snapshot_name", *_REGIONS):
        if field not in seen and field not in defaulted:
            default = " (or give a default)" * (field in _REGIONS)
            issues.append(_Issue(line, field, f"no such column: add it{default}"))
    if "source_snapshot_name" not in seen and "source_resource_name" not in seen:
        issues.append(_Issue(line, "source_snapshot_name", f"no such column: add {_SOURCES}"))
    return columns, issues


def _unknown_columns(
    unknown: list[str], delimiter: str, count: int, *, anything_known: bool
) -> str:
    """What the header holds that is no field, how it was split, and what to write instead."""
    named: list[str] = []
    for cell in unknown[:5]:
        close = difflib.get_close_matches(_words(cell), _FIELDS, n=1)
        named.append(_quote(cell) + (f" (did you mean {close[0]}?)" if close else ""))
    if len(unknown) > 5:
        named.append(f"and {len(unknown) - 5} more")
    if count > 1:
        split = f"columns separated by {_DELIMITERS[delimiter]}"
    else:
        split = "read as one column: the line has no comma, semicolon or tab"
    fields = ", ".join(_OFFERED) + " (case, spaces, hyphens and camelCase do not matter)"
    if anything_known:
        plural = "s" * (len(unknown) > 1)
        return f"unknown column{plural} {', '.join(named)} ({split}); name columns from {fields}"
    example = (";" if delimiter == ";" else ",").join(
        ("source_region", "target_region", "source_snapshot_name", "target_snapshot_name")
    )
    return (
        f"no column is a manifest field: {', '.join(named)} ({split}); write a header such as "
        f"{example}, naming columns from {fields}"
    )
