"""Retention: which of batchcopy's copies a policy keeps, by the rules of restic's ``forget``.

Pure: no I/O, no AWS and no clock of its own (``now`` is passed in). :func:`decide` gives
every candidate copy one :class:`Decision`. Within each group (one origin in one target
region of one account: the caller makes the group key) it does what restic's ``forget``
does with its ``--keep-*`` options:

- Only good copies (``available`` / ``completed``) count toward and are kept by the rules,
  so a night whose copy failed never pushes out an older good copy.
- Good copies are walked newest first. ``keep_last n`` keeps the n newest.
  ``keep_daily`` / ``keep_weekly`` / ``keep_monthly`` / ``keep_yearly`` n keep the newest copy
  of each of the n most recent days / ISO weeks / months / years that have a good copy (a
  period without one is not counted). :data:`UNLIMITED` (-1) counts every such period.
  A rule with counts left at the end of the walk also keeps the oldest good copy
  ("oldest daily"), as restic has since 0.16: a young history keeps all of its length.
- ``keep_within`` keeps every good copy made less than that long before the group's newest
  good copy: counted from the newest copy, not from now (restic's rule), so copies of a job
  that stopped running do not all expire; a copy made exactly that long before is out.
  Copies stamped after ``now`` (a skewed clock) are not taken as that newest copy.
- A copy kept by any rule is kept; the newest good copy of every group is always kept
  ("newest"); every other good copy is deleted. ``pending`` copies are never deleted,
  ``error`` ones only with ``delete_failed``, and a state batchcopy does not know never.

Periods are UTC days, weeks and years where restic uses the local time of the machine it
runs on: copies are made by scheduled jobs in many time zones, and a night must fall on the
same day for all of them and for the prune that runs in yet another. Two copies made at the
same instant count the one whose name sorts first as the newer, so the outcome does not
depend on the order a listing returned them in (restic keeps its input order).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, fields
from typing import Any, Literal

from batchcopy.errors import SettingsError

__all__ = [
    "GOOD_STATES",
    "UNLIMITED",
    "Action",
    "Copy",
    "Decision",
    "Duration",
    "Policy",
    "decide",
    "parse_duration",
]

UNLIMITED = -1
"""A count that keeps every period (restic's ``unlimited``)."""

GOOD_STATES = frozenset({"available", "completed"})  # instance / disk snapshots that finished

Action = Literal["keep", "delete", "never"]

_UNITS = "y (years), m (months), d (days), h (hours)"
_PART = re.compile(r"([0-9]+)([ymdh])")
_COUNTS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


@dataclass(frozen=True, slots=True, kw_only=True)
class Duration:
    """A span of years, calendar months, days and hours, as restic's ``--keep-within``."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    def __post_init__(self) -> None:
        for part in fields(self):
            value = getattr(self, part.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SettingsError(f"{part.name} must be a whole number, 0 or more; got {value!r}")

    def __bool__(self) -> bool:
        return any((self.years, self.months, self.days, self.hours))

    def __str__(self) -> str:
        parts = zip((self.years, self.months, self.days, self.hours), "ymdh", strict=True)
        return "".join(f"{n}{unit}" for n, unit in parts if n) or "0h"

    def before(self, moment: dt.datetime) -> dt.datetime | None:
        """``moment`` less this span, as restic reckons it (Go's ``AddDate``): months first,
        then days, then hours; a day past a month's end rolls over, so a month before
        31 March is 3 March (2 March in a leap year). None when that is before year 1."""
        months = moment.year * 12 + moment.month - 1 - self.years * 12 - self.months
        year, month = divmod(months, 12)
        try:
            first = moment.replace(year=year, month=month + 1, day=1)
            return first + dt.timedelta(days=moment.day - 1 - self.days, hours=-self.hours)
        except (ValueError, OverflowError):
            return None


def parse_duration(text: str, *, field: str = "keep_within") -> Duration:
    """A :class:`Duration` from restic's notation: ``14d``, ``6m``, ``1y2m3d4h``.

    Raises :class:`SettingsError` naming ``field`` when the text is not one."""
    spec = text.strip()
    if not spec:
        raise SettingsError(f"is empty; give a duration in {_UNITS}, e.g. 14d", field=field)
    parts = _PART.findall(spec)
    if "".join(n + unit for n, unit in parts) != spec:
        raise SettingsError(
            f"{text!r} is not a duration: give whole numbers with units {_UNITS}, "
            "e.g. 14d, 6m or 1y2m3d4h (no weeks: 14d)",
            field=field,
        )
    values = {unit: int(n) for n, unit in parts}
    if len(values) != len(parts):
        raise SettingsError(f"{text!r} gives a unit twice; give each of {_UNITS} once", field=field)
    return Duration(
        years=values.get("y", 0),
        months=values.get("m", 0),
        days=values.get("d", 0),
        hours=values.get("h", 0),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """Which copies to keep; see the module's docstring for the rules.

    Counts are 0 (rule off), a positive number, or :data:`UNLIMITED`; ``keep_within`` comes
    from :func:`parse_duration` (a zero duration is no rule, as in restic). A policy without
    any keep rule is refused: it would mean "delete all but the newest"."""

    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: Duration | None = None
    delete_failed: bool = False

    def __post_init__(self) -> None:
        for name in _COUNTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < UNLIMITED:
                raise SettingsError(
                    f"must be a whole number, 0 or more (-1 for unlimited); got {value!r}",
                    field=name,
                )
        if self.keep_within is not None and not isinstance(self.keep_within, Duration):
            raise SettingsError(
                f"must be a Duration, e.g. parse_duration('14d'); got {self.keep_within!r}",
                field="keep_within",
            )
        if not isinstance(self.delete_failed, bool):
            raise SettingsError(
                f"must be True or False; got {self.delete_failed!r}", field="delete_failed"
            )
        if not any(getattr(self, name) for name in _COUNTS) and not self.keep_within:
            raise SettingsError(
                "no keep rule given: give at least one of keep_last, keep_daily, keep_weekly, "
                "keep_monthly, keep_yearly (a count, or -1 for unlimited) or keep_within "
                "(a duration such as 14d)"
            )

    def to_json(self) -> dict[str, Any]:
        """The policy as JSON values (``keep_within`` in restic's notation, "" for none)."""
        values: dict[str, Any] = {name: getattr(self, name) for name in _COUNTS}
        values["keep_within"] = str(self.keep_within) if self.keep_within else ""
        return values | {"delete_failed": self.delete_failed}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Policy:
        """The policy :meth:`to_json` gave; :class:`SettingsError` when it is not one."""
        names = {*_COUNTS, "keep_within", "delete_failed"}
        if not isinstance(values, dict) or set(values) != names:
            raise SettingsError(f"not a retention policy: {values!r}")
        within = values["keep_within"]
        if not isinstance(within, str):
            raise SettingsError(f"must be a duration, got {within!r}", field="keep_within")
        counts = {name: values[name] for name in _COUNTS}
        duration = parse_duration(within) if within else None
        return cls(**counts, keep_within=duration, delete_failed=values["delete_failed"])

    def __str__(self) -> str:
        """The policy as the command line gives it: ``--keep-daily 7 --keep-within 14d``."""
        parts = [
            f"--{name.replace('_', '-')} {value}"
            for name in _COUNTS
            if (value := getattr(self, name))
        ]
        if self.keep_within:
            parts.append(f"--keep-within {self.keep_within}")
        if self.delete_failed:
            parts.append("--delete-failed")
        return " ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Copy:
    """The facts about one candidate copy that retention looks at.

    ``group`` is any hashable key; copies are only weighed against their own group.
    ``created_at`` must be timezone-aware; it is kept in UTC."""

    name: str
    group: Hashable
    created_at: dt.datetime
    state: str

    def __post_init__(self) -> None:
        if self.created_at.utcoffset() is None:
            raise ValueError(f"{self.name}: created_at {self.created_at} has no time zone")
        object.__setattr__(self, "created_at", self.created_at.astimezone(dt.UTC))


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What becomes of one copy.

    ``keep``: ``rules`` names every rule keeping it, in the order last, daily, weekly,
    monthly, yearly, within, newest (``"oldest daily"``: kept as the oldest copy while the
    daily count had room). ``delete``: no rule keeps it (``reason`` ``"failed"`` for a
    failed copy deleted with delete_failed). ``never``: not to be deleted; ``reason`` says
    why (``"pending"``, ``"failed (give --delete-failed)"``, an unknown state)."""

    copy: Copy
    action: Action
    rules: tuple[str, ...] = ()
    reason: str = ""


_PERIODS: tuple[tuple[str, str, Callable[[dt.datetime], Hashable] | None], ...] = (
    ("last", "keep_last", None),
    ("daily", "keep_daily", lambda t: t.date()),
    ("weekly", "keep_weekly", lambda t: t.isocalendar()[:2]),
    ("monthly", "keep_monthly", lambda t: (t.year, t.month)),
    ("yearly", "keep_yearly", lambda t: t.year),
)


def _rules(good: list[Copy], policy: Policy, now: dt.datetime) -> list[list[str]]:
    """The rules keeping each of one group's good copies, ``good`` sorted newest first."""
    rules: list[list[str]] = [[] for _ in good]
    oldest = len(good) - 1
    # Rule by rule: restic walks the copies once with a counter per rule, and the counters
    # never interact, so this is the same walk, turned inside out.
    for rule, option, period in _PERIODS:
        left: int = getattr(policy, option)
        seen: Hashable = None
        for nr, copy in enumerate(good):
            if left == 0:
                break
            value = nr if period is None else period(copy.created_at)
            # a new period, or the oldest copy while the rule has counts left (restic 0.16+)
            if value != seen or nr == oldest:
                rules[nr].append(rule if value != seen else f"oldest {rule}")
                seen = value
                if left > 0:  # UNLIMITED stays UNLIMITED
                    left -= 1
    if policy.keep_within:
        past = [copy.created_at for copy in good if copy.created_at < now]
        cutoff = policy.keep_within.before(max(past)) if past else None
        for nr, copy in enumerate(good):
            if cutoff is None or copy.created_at > cutoff:
                rules[nr].append("within")
    if good:
        rules[0].append("newest")
    return rules


def decide(copies: Iterable[Copy], policy: Policy, now: dt.datetime) -> list[Decision]:
    """One :class:`Decision` per copy, in the order given.

    ``now`` (timezone-aware) only keeps copies stamped in the future from becoming the
    newest copy ``keep_within`` counts back from."""
    if now.utcoffset() is None:
        raise ValueError(f"now {now} has no time zone")
    copies = list(copies)
    groups: dict[Hashable, list[int]] = {}
    for index, copy in enumerate(copies):
        if copy.state in GOOD_STATES:
            groups.setdefault(copy.group, []).append(index)
    kept: dict[int, list[str]] = {}
    for members in groups.values():
        # newest first; at the same instant the name sorting first counts as newer
        members.sort(key=lambda i: copies[i].name)
        members.sort(key=lambda i: copies[i].created_at, reverse=True)
        good = [copies[i] for i in members]
        kept.update(zip(members, _rules(good, policy, now), strict=True))
    decisions: list[Decision] = []
    for index, copy in enumerate(copies):
        if index in kept:
            rules = tuple(kept[index])
            decisions.append(Decision(copy=copy, action="keep" if rules else "delete", rules=rules))
        elif copy.state == "pending":
            decisions.append(Decision(copy=copy, action="never", reason="pending"))
        elif copy.state == "error" and policy.delete_failed:
            decisions.append(Decision(copy=copy, action="delete", reason="failed"))
        elif copy.state == "error":
            reason = "failed (give --delete-failed)"
            decisions.append(Decision(copy=copy, action="never", reason=reason))
        else:
            reason = f"state {copy.state!r} unknown to batchcopy"
            decisions.append(Decision(copy=copy, action="never", reason=reason))
    return decisions
