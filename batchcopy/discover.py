"""Discovery: list what exists in the source regions and write the manifest that copies it.

    options = DiscoverOptions(source_regions=["us-east-1"], target_regions=["eu-west-1"])
    rows = await discover(options, settings)
    write_manifest(rows, sys.stdout, "csv")

What becomes a row (one row per source item per target region):

- manual snapshots, instance and disk, that are ready to copy (available / completed);
  pending and failed ones are left out with a warning in the log (``manual=False``: none);
- with ``auto``, automatic snapshots of instances and disks, only those with status Success:
  ``latest`` one row per resource that has one, copying the latest restorable one, resolved
  now to its date (restore_date), so a nightly discover and run copies each night's
  snapshot under a new name; ``all`` one row per automatic snapshot
  (restore_date); a date ``YYYY-MM-DD`` one row per resource with an automatic snapshot
  that day. ``none`` (the default): no automatic snapshots.

Filters, all of which an item must pass: ``kind`` (instance, disk or all); ``include`` /
``exclude`` globs (fnmatch, case-sensitive) on the source name, which is the snapshot's name
or, for automatic snapshots, the instance's or disk's; ``tags``, each ``KEY=VALUE`` (that
value; ``KEY=`` an empty one) or ``KEY`` (any value), matched on a manual snapshot's own tags
and on an automatic snapshot's instance or disk.

A manual snapshot that is itself the target of another row (a copy made from this manifest
earlier, when a source region is also a target region) is not a source, so discovering
again after a run gives the same manifest rather than copies of copies.

Target names come from a template; its placeholders are ``{source}`` (the source name),
``{source_region}``, ``{target_region}``, ``{kind}`` (instance or disk) and ``{date}``: the
automatic snapshot's date (for ``auto="latest"``, the latest one's), and for a manual
snapshot the day it was created (UTC). The defaults are :data:`MANUAL_TEMPLATE` for manual
snapshots and :data:`AUTO_TEMPLATE` for automatic ones (``web-1-auto-2026-11-20-eu-west-1``:
"auto" keeps them apart from manual snapshots named after their instance and day, a common
habit); a template given applies to both. Every name must
follow :data:`batchcopy.facts.NAME_RULE` and be unique in its target region: otherwise
:func:`discover` raises :class:`DiscoverError` listing every such row, before anything is
written.

Rows are sorted by source region, source and target region, so the target regions of one
source sit side by side and every region's lane has work from the start of a run.

Errors (a branch of the tree drawn in :mod:`batchcopy.errors`)::

    BatchcopyError
    └── DiscoverError   unusable options, bad or clashing target names, nothing matched

Lightsail errors while listing (``LightsailError``, ``CredentialsError``) pass through as
they are, after the retry policy of the settings gave up. asyncio is the backend.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import functools
import json
import logging
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TextIO

import anyio

from batchcopy.accounts import ACCOUNT_RULE, is_account_id
from batchcopy.errors import BatchcopyError, LightsailError, ungrouped
from batchcopy.facts import NAME_RULE, is_valid_date, is_valid_name, lightsail_regions
from batchcopy.jobs import MANIFEST_FIELDS
from batchcopy.lightsail import LightsailClients
from batchcopy.retry import Guard, guarded
from batchcopy.sessions import organization_accounts
from batchcopy.settings import Settings

__all__ = [
    "AUTO_MODES",
    "AUTO_TEMPLATE",
    "FORMATS",
    "KINDS",
    "MANUAL_TEMPLATE",
    "PLACEHOLDERS",
    "DiscoverError",
    "DiscoverOptions",
    "accounts_to_list",
    "discover",
    "write_manifest",
]

log = logging.getLogger(__name__)


KINDS = ("all", "instance", "disk")
AUTO_MODES = ("none", "latest", "all")  # or a date, YYYY-MM-DD
FORMATS = ("csv", "json")
PLACEHOLDERS = ("source", "source_region", "target_region", "kind", "date")
MANUAL_TEMPLATE = "{source}-{target_region}"
# "auto" keeps these apart from manual snapshots named after their instance and day.
AUTO_TEMPLATE = "{source}-auto-{date}-{target_region}"
MAX_SHOWN = 20  # problems listed in one DiscoverError; the rest are counted

_READY = {"instance": "available", "disk": "completed"}
_LATEST = "use_latest_restorable_auto_snapshot"


class DiscoverError(BatchcopyError):
    """Discovery cannot make a manifest; the message says which item or option, and why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoverOptions:
    """What to list and how to name the copies; every value is checked here, before any call.

    Sequences may be given as lists; they are kept as tuples.
    """

    source_regions: Sequence[str]
    target_regions: Sequence[str]  # each source item becomes one row per target region
    kind: str = "all"  # instance | disk | all
    include: Sequence[str] = ()  # globs on the source name; none given: every name
    exclude: Sequence[str] = ()
    tags: Sequence[str] = ()  # KEY=VALUE or KEY; an item needs all of them
    auto: str = "none"  # none | latest | all | YYYY-MM-DD
    manual: bool = True  # list manual snapshots
    name_template: str | None = None  # None: MANUAL_TEMPLATE / AUTO_TEMPLATE
    # Accounts to list in, each reached as a run reaches it; none: the base credentials'.
    accounts: Sequence[str] = ()

    def __post_init__(self) -> None:
        for name in ("source_regions", "target_regions", "include", "exclude", "tags", "accounts"):
            value = getattr(self, name)
            # A lone string is one item, not a sequence of characters.
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        for option, regions in (
            ("--source-region", self.source_regions),
            ("--target-region", self.target_regions),
        ):
            _check_regions(option, regions)
        if self.kind not in KINDS:
            raise DiscoverError(f"--kind must be instance, disk or all, got {self.kind!r}")
        if self.auto not in AUTO_MODES and not is_valid_date(self.auto):
            raise DiscoverError(
                f"--auto must be none, latest, all or a date YYYY-MM-DD, got {self.auto!r}"
            )
        if not self.manual and self.auto == "none":
            raise DiscoverError(
                "nothing to list: without manual snapshots, give --auto latest, all or a date"
            )
        for account in self.accounts:
            if not is_account_id(account):
                raise DiscoverError(f"account {account!r} is not {ACCOUNT_RULE}")
        self.tag_filter  # noqa: B018 - parses every --tag, raising on a bad one
        if self.name_template is not None:
            _check_template(self.name_template)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds listed: ("instance", "disk") for all."""
        return ("instance", "disk") if self.kind == "all" else (self.kind,)

    @property
    def tag_filter(self) -> tuple[tuple[str, str | None], ...]:
        """The tags an item must have, as (key, value); value None: any value."""
        parsed = []
        for tag in self.tags:
            key, equals, value = tag.partition("=")
            if not key.strip():
                raise DiscoverError(f"--tag {tag!r}: give KEY=VALUE, or KEY for any value")
            parsed.append((key, value if equals else None))
        return tuple(parsed)

    def wants(self, name: str, tags: Mapping[str, str]) -> bool:
        """Whether an item called ``name`` with ``tags`` passes the name and tag filters."""
        if self.include and not any(fnmatchcase(name, glob) for glob in self.include):
            return False
        if any(fnmatchcase(name, glob) for glob in self.exclude):
            return False
        return all(
            key in tags and (value is None or tags[key] == value) for key, value in self.tag_filter
        )


def _check_regions(option: str, regions: Sequence[str]) -> None:
    if not regions:
        raise DiscoverError(f"give at least one {option}")
    known = lightsail_regions()
    seen: set[str] = set()
    for region in regions:
        if region not in known:
            raise DiscoverError(
                f"{option} {region!r} is not a Lightsail region; use one of {', '.join(known)}"
            )
        if region in seen:
            raise DiscoverError(f"{option} {region} is given twice; name each region once")
        seen.add(region)


def _check_template(template: str) -> None:
    where = f"--name-template {template!r}"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise DiscoverError(f"{where}: {exc}") from None
    known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in PLACEHOLDERS:
            raise DiscoverError(f"{where}: unknown placeholder {{{field}}}; use {known}")
        if spec or conversion:
            raise DiscoverError(f"{where}: {{{field}}} takes no format spec or conversion")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Source:
    """One thing to copy, before it is given target regions and names."""

    region: str
    name: str  # the manual snapshot, or the instance or disk of an automatic one
    account: str = ""  # "": the base credentials'
    kind: str  # instance | disk
    manual: bool
    date: str  # what {date} stands for

    def __str__(self) -> str:
        where = f"{self.account}/{self.region}" if self.account else self.region
        if self.manual:
            return f"{self.kind} snapshot {where}/{self.name}"
        return f"the automatic snapshot {self.date} of {self.kind} {where}/{self.name}"

    def row(self, target_region: str, target_name: str) -> dict[str, str]:
        automatic = not self.manual
        return {
            "source_region": self.region,
            "target_region": target_region,
            "source_snapshot_name": self.name if self.manual else "",
            "source_resource_name": self.name if automatic else "",
            "restore_date": self.date if automatic else "",
            _LATEST: "",
            "target_snapshot_name": target_name,
            **({"account": self.account} if self.account else {}),
        }


async def discover(
    options: DiscoverOptions,
    settings: Settings | None = None,
    *,
    unreached: dict[str, LightsailError] | None = None,
) -> list[dict[str, str]]:
    """The manifest rows (keys: :data:`batchcopy.jobs.MANIFEST_FIELDS`) that copy what
    ``options`` select, sorted.

    With ``options.accounts``, each account is listed as a run reaches it (its role
    assumed). An account that cannot be reached raises its error, or, when ``unreached`` is
    given, is left out and put there, and the others are listed.

    Listing pages and automatic-snapshot lookups run under the settings' retry policy;
    lookups run up to ``settings.max_in_flight`` at once. Raises DiscoverError for names a
    template makes that are invalid or clash (all of them listed), or when nothing matched.
    """
    settings = settings or Settings()
    guard = _guard(settings)
    sources: list[_Source] = []
    async with LightsailClients(settings) as base:
        for account in options.accounts or ("",):
            try:
                api = await base.account(account)
            except LightsailError as exc:
                if unreached is None:
                    raise
                unreached[account] = exc
                log.warning("account %s left out: %s", account, exc)
                continue
            found: list[_Source] = []
            for region in options.source_regions:
                if options.manual:
                    found += await _manual(api, guard, region, options)
                if options.auto != "none":
                    found += await _automatic(api, guard, region, options, settings.max_in_flight)
            sources += (dataclasses.replace(source, account=account) for source in found)
    rows = _rows(sources, options)
    if not rows:
        raise DiscoverError(f"nothing to copy: found no {_selection(options)}")
    return rows


async def accounts_to_list(
    settings: Settings,
    *,
    organization: bool = False,
    units: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[str]:
    """The accounts a discover lists: those of the accounts file (``settings.access``),
    and with ``organization`` (or ``units``, organizational unit ids) the organization's
    ACTIVE ones, less ``exclude``; none: the base credentials' own."""
    listed = list(settings.access.accounts)
    if organization or units:
        listed += await organization_accounts(settings, units=units)
    if strays := sorted(set(exclude) - set(listed)):
        # A mistyped id would leave the account it meant in: say so, as a warning (an
        # account that has left the organization is no reason to stop a nightly job).
        log.warning("--exclude-account %s: not among the accounts listed", ", ".join(strays))
    return [account for account in dict.fromkeys(listed) if account not in exclude]


def _guard(settings: Settings) -> Guard:
    """Run one read under the retry policy."""
    return functools.partial(guarded, policy=settings.retry)


async def _manual(
    api: LightsailClients, guard: Guard, region: str, options: DiscoverOptions
) -> list[_Source]:
    found = []
    async for info, tags in api.list_snapshot_items(region, guard, options.kinds):
        if not options.wants(info.name, tags):
            continue
        if "batchcopy:source" in tags:
            # A copy batchcopy made; its source may be gone, but it is not a source itself.
            log.info("%s/%s is a copy made by batchcopy: left out", region, info.name)
            continue
        if info.state != _READY[info.kind]:
            log.warning(
                "%s snapshot %s/%s is %s, not ready to copy: left out",
                info.kind,
                region,
                info.name,
                info.state or "in an unknown state",
            )
            continue
        day = dt.datetime.fromtimestamp(info.created_at, dt.UTC).date().isoformat()
        found.append(_Source(region=region, name=info.name, kind=info.kind, manual=True, date=day))
    return found


async def _automatic(
    api: LightsailClients, guard: Guard, region: str, options: DiscoverOptions, at_once: int
) -> list[_Source]:
    resources = [
        (name, kind)
        async for name, kind, tags in api.list_resources(region, guard, options.kinds)
        if options.wants(name, tags)
    ]
    autos: dict[str, list[str]] = {}
    limiter = anyio.CapacityLimiter(at_once)

    async def look_up(name: str) -> None:
        async with limiter:
            found = await guard(functools.partial(api.auto_snapshots, region, name))
            autos[name] = found.restorable() if found else []  # None: deleted since listed

    with ungrouped():  # the caller sees a Lightsail (or credentials) error itself
        async with anyio.create_task_group() as tg:
            for name, _ in resources:
                tg.start_soon(look_up, name)

    found = []
    for name, kind in resources:
        dates = autos[name]
        source = functools.partial(_Source, region=region, name=name, kind=kind, manual=False)
        if options.auto == "latest":
            # The date, not "latest": a name without it would hold tomorrow's copy too.
            found += [source(date=dates[-1])] if dates else []
        elif options.auto == "all":
            found += [source(date=date) for date in dates]
        elif options.auto in dates:
            found.append(source(date=options.auto))
    return found


def _rows(sources: list[_Source], options: DiscoverOptions) -> list[dict[str, str]]:
    """Target names for every source in every target region; DiscoverError listing every
    name that is invalid or clashes."""

    def name(source: _Source, target_region: str) -> str:
        template = options.name_template or (MANUAL_TEMPLATE if source.manual else AUTO_TEMPLATE)
        return template.format(
            source=source.name,
            source_region=source.region,
            target_region=target_region,
            kind=source.kind,
            date=source.date,
        )

    targets = {(s.account, t, name(s, t)) for s in sources for t in options.target_regions}
    invalid: list[str] = []
    clashes: list[str] = []
    rows: list[dict[str, str]] = []
    first: dict[tuple[str, str, str], _Source] = {}
    for source in sources:
        if source.manual and (source.account, source.region, source.name) in targets:
            log.info("%s is the target of another row (an earlier copy): left out", source)
            continue
        for target_region in options.target_regions:
            target = name(source, target_region)
            if not is_valid_name(target):
                invalid.append(f"{source} -> {target_region}: {target!r} is not a valid name")
            elif (
                other := first.setdefault((source.account, target_region, target), source)
            ) is not source:
                clashes.append(f"{source} and {other} -> {target_region}/{target}")
            else:
                rows.append(source.row(target_region, target))
    given = options.name_template
    template = f"--name-template {given!r}" if given else "the default name templates"
    lines = []
    for found, what, rule in (
        (invalid, "break the name rule", f"names must be {NAME_RULE}; give a --name-template"),
        (
            clashes,
            "are not unique in their target region",
            "give a --name-template that tells them apart (with {date}, {kind} or "
            "{source_region}, say)",
        ),
    ):
        if found:
            lines.append(f"{len(found)} target name(s) made by {template} {what}; {rule}:")
            lines += (f"  {line}" for line in found[:MAX_SHOWN])
            if len(found) > MAX_SHOWN:
                lines.append(f"  ... and {len(found) - MAX_SHOWN} more")
    if lines:
        raise DiscoverError("\n".join(lines))
    return sorted(rows, key=_order)


def _order(row: Mapping[str, str]) -> tuple[str, ...]:
    source = row["source_snapshot_name"] or row["source_resource_name"]
    return (
        row.get("account", ""),
        row["source_region"],
        source,
        row["restore_date"],
        row[_LATEST],
        row["target_region"],
    )


def _selection(options: DiscoverOptions) -> str:
    """What was looked for, in words, to say that none was found."""
    what = ["manual snapshots"] if options.manual else []
    if options.auto != "none":
        what.append(f"automatic snapshots ({options.auto})")
    filters = [
        f"{label} {value}"
        for label, values in (
            ("--include", options.include),
            ("--exclude", options.exclude),
            ("--tag", options.tags),
        )
        for value in values
    ]
    found = f"{' or '.join(what)} of kind {options.kind} in {', '.join(options.source_regions)}"
    return f"{found} matching {' '.join(filters)}" if filters else f"{found} ready to copy"


def write_manifest(rows: Iterable[Mapping[str, str]], out: TextIO, fmt: str = "csv") -> None:
    """Write ``rows`` as a manifest :func:`batchcopy.load_manifest` reads: CSV with a header
    of :data:`batchcopy.jobs.MANIFEST_FIELDS`, or a JSON array with one object per line
    (empty fields left out, use_latest_restorable_auto_snapshot as a boolean)."""
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif fmt == "json":
        objects = [
            json.dumps(
                {k: (True if k == _LATEST else row[k]) for k in MANIFEST_FIELDS if row.get(k)}
            )
            for row in rows
        ]
        out.write("[\n" + ",\n".join(f"  {o}" for o in objects) + "\n]\n" if objects else "[]\n")
    else:
        raise DiscoverError(f"--format must be csv or json, got {fmt!r}")
