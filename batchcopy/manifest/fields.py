"""The rules for each manifest field, and between fields: a row's values -> its jobs or issues.

Every reader (CSV, JSON, JSON Lines) hands rows here as canonical field -> raw value, so each
rule is written once. Also the spellings a column or key may take, and how values are quoted
in messages.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NamedTuple

from batchcopy.accounts import ACCOUNT_RULE, is_account_id
from batchcopy.facts import NAME_RULE, is_valid_date, is_valid_name, lightsail_regions
from batchcopy.jobs import SENT_BEFORE, CopyJob

MAX_FIELD_CHARS = 1024
_REGIONS = ("source_region", "target_region")
_LATEST = "use_latest_restorable_auto_snapshot"
_SOURCES = "source_snapshot_name (a manual snapshot) or source_resource_name (automatic ones)"


class _Issue(NamedTuple):
    """A problem before it is given the manifest's name."""

    line: int
    field: str
    message: str


class _Row(NamedTuple):
    """One job as written: canonical field -> raw value (str from CSV, any JSON value)."""

    line: int
    values: dict[str, object]


class _Invalid(Exception):
    """A value breaks its field's rules; each argument is a message saying how."""


def _defaults(source_region: str | None, target_region: str | None) -> dict[str, str]:
    given = {"source_region": source_region, "target_region": target_region}
    return {field: value for field, value in given.items() if value}


def _check(row: _Row, defaults: Mapping[str, str]) -> list[CopyJob] | list[_Issue]:
    """A row's jobs, one per target region in the order written; or every rule it breaks."""
    issues: list[_Issue] = []
    text: dict[str, str] = {}
    broken: set[str] = set()  # already reported, so "missing" is not said as well
    latest = sent_before = False
    for field in _FIELDS:
        try:
            value = _value(field, row.values.get(field))
            if value is None and field in defaults:
                value = _value(field, defaults[field])
        except _Invalid as exc:
            issues += (_Issue(row.line, field, message) for message in exc.args)
            broken.add(field)
            continue
        if isinstance(value, bool) and field == SENT_BEFORE:
            sent_before = value
        elif isinstance(value, bool):
            latest = value
        elif value is not None:
            text[field] = value
    issues += (_Issue(row.line, f, m) for f, m in _conflicts(text, latest, broken))
    if issues:
        return issues
    return [
        CopyJob(
            line=row.line,
            source_region=text["source_region"],
            target_region=region,
            target_snapshot_name=text["target_snapshot_name"],
            source_snapshot_name=text.get("source_snapshot_name"),
            source_resource_name=text.get("source_resource_name"),
            restore_date=text.get("restore_date"),
            use_latest=latest,
            account=text.get("account", ""),
            sent_before=sent_before,
        )
        for region in text["target_region"].split(_SEPARATOR)
    ]


def _conflicts(text: dict[str, str], latest: bool, broken: set[str]) -> Iterator[tuple[str, str]]:
    """The rules between fields: what is missing, and what cannot go together."""
    for field in (*_REGIONS, "target_snapshot_name"):
        if field not in text and field not in broken:
            hint = "set it on the job or give a default" if field in _REGIONS else "name the copy"
            yield field, f"missing: {hint}"
    snapshot, resource = text.get("source_snapshot_name"), text.get("source_resource_name")
    date = text.get("restore_date")
    if snapshot and resource:
        yield "source_snapshot_name", f"give {_SOURCES}, not both"
    elif resource and date and latest:
        yield "restore_date", f"give restore_date or {_LATEST}=true, not both"
    elif resource and not (date or latest or {"restore_date", _LATEST} & broken):
        yield "restore_date", f"missing: an automatic snapshot needs it or {_LATEST}=true"
    elif snapshot:
        for field, given in (("restore_date", date), (_LATEST, latest)):
            if given:
                yield field, "only for automatic snapshots (source_resource_name); remove it"
    elif not (resource or {"source_snapshot_name", "source_resource_name"} & broken):
        yield "source_snapshot_name", f"missing: give {_SOURCES}"
    target, source_region = text.get("target_snapshot_name"), text.get("source_region")
    regions = text.get("target_region", "").split(_SEPARATOR)
    if snapshot and target == snapshot and source_region in regions:
        yield (
            "target_snapshot_name",
            (f"the source itself in {source_region}: a copy needs a name of its own there"),
        )


def _value(field: str, raw: object) -> str | bool | None:
    """The value of one field (None if absent), or _Invalid saying which rules it breaks.

    target_region's value is its regions joined by ";", each checked, none twice.
    """
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) and field in (_LATEST, SENT_BEFORE):
        return raw
    if isinstance(raw, list) and field == "target_region":
        return _regions(raw, written=None)
    if isinstance(raw, int) and not isinstance(raw, bool) and field == "account":
        raw = str(raw)  # a JSON number: fine if it kept its 12 digits
    if not isinstance(raw, str):
        wanted = {
            _LATEST: "true or false",
            SENT_BEFORE: "true or false",
            "target_region": "a string or a list of strings",
        }
        raise _Invalid(f"must be {wanted.get(field, 'a string')}, not {_kind(raw)}")
    value = raw.strip()
    if not value:
        return None
    if len(value) > MAX_FIELD_CHARS:
        raise _Invalid(f"too long ({len(value)} characters; the limit is {MAX_FIELD_CHARS})")
    return _RULES[field](value)


def _region(value: str) -> str:
    regions = lightsail_regions()
    if value in regions:
        return value
    close = difflib.get_close_matches(value, regions, n=1)
    guess = f" (did you mean {close[0]}?)" if close else ""
    raise _Invalid(
        f"{_quote(value)} is not a Lightsail region{guess}; valid ones include "
        f"{', '.join(regions[:3])}; `aws lightsail get-regions` lists them all"
    )


def _targets(value: str) -> str:
    return _regions(value.split(_SEPARATOR), written=value)


def _regions(parts: Sequence[object], *, written: str | None) -> str:
    """The target regions joined by ";", in the order written; _Invalid says each part's fault.

    ``parts`` is a JSON list, or ``written`` (a cell or string) split at each ";".
    """
    limit = len(lightsail_regions())
    if not parts:
        raise _Invalid("must not be an empty list: give one region or more, or leave it out")
    if len(parts) > limit:  # so a huge list is one problem, not one per entry
        raise _Invalid(
            f"has {len(parts)} entries, but Lightsail has {limit} regions; name each region once"
        )
    regions: list[str] = []
    messages: list[str] = []
    seen: set[str] = set()
    for number, part in enumerate(parts, start=1):
        if not isinstance(part, str):
            messages.append(f"entry {number} must be a string, not {_kind(part)}")
            continue
        region = part.strip()
        if not region and written is not None:
            messages.append(
                f"{_quote(written)} has an empty entry; separate regions with single "
                "semicolons, like eu-west-1;ap-south-1"
            )
        elif not region:
            messages.append(f"entry {number} is empty; give a region or remove it")
        elif len(region) > MAX_FIELD_CHARS:
            messages.append(
                f"entry {number} is too long ({len(region)} characters; the limit is "
                f"{MAX_FIELD_CHARS})"
            )
        elif region in seen:
            messages.append(f"{_quote(region)} is listed twice; name each region once")
        else:
            seen.add(region)
            try:
                regions.append(_region(region))
            except _Invalid as exc:
                messages += exc.args
    if messages:
        raise _Invalid(*dict.fromkeys(messages))  # "a;;" or "a;a;a" need saying only once
    return _SEPARATOR.join(regions)


def _account(value: str) -> str:
    if is_account_id(value):
        return value
    hint = ""
    if value.isdigit() and len(value) < 12:
        hint = " (a spreadsheet may have dropped leading zeros: format the column as text)"
    raise _Invalid(f"{_quote(value)} is not an account id: {ACCOUNT_RULE}{hint}")


def _name(value: str) -> str:
    if is_valid_name(value):
        return value
    raise _Invalid(f"{_quote(value)} is not a valid name: {NAME_RULE}")


def _date(value: str) -> str:
    if is_valid_date(value):
        return value
    raise _Invalid(f"{_quote(value)} is not a real date written YYYY-MM-DD, like 2026-11-20")


def _boolean(value: str) -> bool:
    if value.lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.lower() in ("true", "yes", "1")
    raise _Invalid(f"{_quote(value)} is not true or false (nor yes/no, 1/0)")


_SEPARATOR = ";"  # between target regions; no region name holds one
_RULES: dict[str, Callable[[str], str | bool]] = {
    "source_region": _region,
    "target_region": _targets,
    "source_snapshot_name": _name,
    "source_resource_name": _name,
    "restore_date": _date,
    _LATEST: _boolean,
    "target_snapshot_name": _name,
    "account": _account,
    SENT_BEFORE: _boolean,  # retry.csv's: the row's copy may have been sent already
}
_FIELDS = tuple(_RULES)  # in the order reports and CopyJob.to_row use, then sent_before


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word.title() for word in rest)


_SPELLINGS = {spelling: field for field in _FIELDS for spelling in (field, _camel(field))}
# The fields messages offer: sent_before is retry.csv's own, not one to write by hand.
_OFFERED = tuple(field for field in _FIELDS if field != SENT_BEFORE)
_ACCEPTED = ", ".join(_OFFERED) + " (or camelCase)"


def _words(name: str) -> str:
    """A column name as snake_case words: "Source Region", "sourceRegion", "SOURCE-REGION"."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return "_".join(word for word in re.split(r"[\s_-]+", spaced.lower()) if word)


def _column(name: str) -> str | None:
    """The field a CSV column names, in any case, its words joined by "_", "-", spaces or humps.

    Spreadsheets title-case and space their headers; JSON keys, written by programs, stay
    snake_case or camelCase (_SPELLINGS).
    """
    field = _words(name)
    return field if field in _RULES else None


def _quote(value: str) -> str:
    # ASCII escapes keep control characters and lone surrogates off the terminal.
    return json.dumps(value if len(value) <= 60 else value[:60] + "...")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    kinds = {bool: "true/false", dict: "an object", list: "an array", str: "a string"}
    return next((kind for t, kind in kinds.items() if isinstance(value, t)), "a number")
