"""The retention policy keeps and deletes exactly what restic's ``forget`` would, per group,
and never deletes a pending copy, a failed one without delete_failed, or a group's newest."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Hashable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchcopy.errors import SettingsError
from batchcopy.retention import (
    UNLIMITED,
    Copy,
    Decision,
    Duration,
    Policy,
    decide,
    parse_duration,
)

UTC = dt.UTC
NOW = dt.datetime(2028, 3, 6, 12, tzinfo=UTC)
WEB = ("111122223333", "eu-central-1", "web-1")
DB = ("111122223333", "eu-central-1", "db-1")
SHORT = ("111122223333", "us-west-2", "web-1")  # the same origin in another region

Cutoff = Callable[[dt.datetime], dt.datetime]


def at(text: str) -> dt.datetime:
    """An instant written as ISO 8601 (UTC unless it says otherwise)."""
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def good(name: str, when: str, group: Hashable = WEB) -> Copy:
    return Copy(name=name, group=group, created_at=at(when), state="available")


def nights() -> list[dt.date]:
    """Nights with a scheduled copy: across 2026-W53 into 2027, then mid-month through 2027,
    then across 2028's leap day."""
    winter = [dt.date(2026, 12, 1) + dt.timedelta(days=i) for i in range(75)]
    monthly = [dt.date(2027, month, 15) for month in range(3, 13)]
    leap = [dt.date(2028, 2, 10) + dt.timedelta(days=i) for i in range(25)]
    return winter + monthly + leap


def history() -> list[Copy]:
    """110 nights of two origins in one region and three nights of one in another: gaps,
    failed nights, pending copies, second runs in a night, copies just before midnight and
    one stamped in another time zone."""
    copies: list[Copy] = []
    for group, shift in ((WEB, 0), (DB, 1)):
        for i, night in enumerate(nights()):
            if (i + shift) % 13 == 0:
                continue  # the job did not run that night
            state = "error" if (i + shift) % 7 == 3 else "available"
            if (group, i) in ((WEB, len(nights()) - 1), (DB, 40)):
                state = "pending"
            time = dt.time(23, 59, 59) if i % 6 == 1 else dt.time(2)
            created = dt.datetime.combine(night, time, tzinfo=UTC)
            name = f"{group[2]}-{night}"
            copies.append(Copy(name=name, group=group, created_at=created, state=state))
            if i % 10 == 4:  # a second run that night, at 14:00: newer or older than the first
                again = dt.datetime.combine(night, dt.time(14), tzinfo=UTC)
                copies.append(
                    Copy(name=f"{name}-b", group=group, created_at=again, state="available")
                )
    # 00:30 on New Year's Day in Berlin is 23:30 UTC on 2026-12-31: still 2026 and its week 53.
    berlin = dt.timezone(dt.timedelta(hours=1))
    copies.append(
        Copy(
            name="web-1-berlin",
            group=WEB,
            created_at=dt.datetime(2027, 1, 1, 0, 30, tzinfo=berlin),
            state="completed",
        )
    )
    copies += [
        good("short-1", "2028-03-02T02:00", SHORT),
        good("short-2", "2028-03-03T02:00", SHORT),
        good("short-2b", "2028-03-03T01:00", SHORT),
        good("short-3", "2028-03-04T02:00", SHORT),
    ]
    return copies


def monday(moment: dt.datetime) -> dt.date:
    """The Monday starting the ISO week of ``moment`` (UTC)."""
    day = moment.astimezone(UTC).date()
    return day - dt.timedelta(days=day.weekday())


PERIODS: dict[str, Callable[[Copy], object]] = {
    "last": lambda c: c.name,
    "daily": lambda c: c.created_at.astimezone(UTC).date(),
    "weekly": lambda c: monday(c.created_at),
    "monthly": lambda c: (c.created_at.astimezone(UTC).year, c.created_at.astimezone(UTC).month),
    "yearly": lambda c: c.created_at.astimezone(UTC).year,
}


def expected(
    copies: list[Copy],
    counts: dict[str, int],
    within: Cutoff | None = None,
    delete_failed: bool = False,
    now: dt.datetime = NOW,
) -> dict[str, tuple[str, set[str]]]:
    """restic's forget, written out the plain way: name -> (action, the rules keeping it)."""
    result: dict[str, tuple[str, set[str]]] = {}
    for c in copies:
        if c.state == "pending":
            result[c.name] = ("never", set())
        elif c.state == "error":
            result[c.name] = ("delete" if delete_failed else "never", set())
        elif c.state not in ("available", "completed"):
            result[c.name] = ("never", set())
    for group in {c.group for c in copies}:
        kept = [c for c in copies if c.group == group and c.state in ("available", "completed")]
        kept.sort(key=lambda c: (-c.created_at.timestamp(), c.name))  # newest first
        if not kept:
            continue
        rules: dict[str, set[str]] = {c.name: set() for c in kept}
        rules[kept[0].name].add("newest")
        for rule, n in counts.items():
            if n == 0:
                continue
            seen: list[object] = []
            for c in kept:
                if PERIODS[rule](c) not in seen:
                    seen.append(PERIODS[rule](c))
                    if n == -1 or len(seen) <= n:
                        rules[c.name].add(rule)
            # counts left over at the end keep the oldest copy too
            if (n == -1 or len(seen) < n) and rule not in rules[kept[-1].name]:
                rules[kept[-1].name].add(f"oldest {rule}")
        if within is not None:
            past = [c.created_at for c in kept if c.created_at < now]
            for c in kept:
                if not past or c.created_at > within(max(past)):
                    rules[c.name].add("within")
        for c in kept:
            result[c.name] = ("keep", rules[c.name]) if rules[c.name] else ("delete", set())
    return result


def outcome(decisions: Iterable[Decision]) -> dict[str, tuple[str, set[str]]]:
    return {d.copy.name: (d.action, set(d.rules)) for d in decisions}


def one_year_two_months_back(moment: dt.datetime) -> dt.datetime:
    """From a March of the history: the same day and time in January of the year before."""
    assert moment.month == 3
    return moment.replace(year=moment.year - 1, month=1)


def three_days(moment: dt.datetime) -> dt.datetime:
    return moment - dt.timedelta(days=3)


CASES: list[tuple[dict[str, int], str | None, Cutoff | None]] = [
    ({"last": 1}, None, None),
    ({"last": 5}, None, None),
    ({"last": UNLIMITED}, None, None),
    ({"daily": 7}, None, None),
    ({"daily": 30}, None, None),
    ({"daily": 500}, None, None),
    ({"daily": UNLIMITED}, None, None),
    ({"weekly": 4}, None, None),
    ({"weekly": 20}, None, None),
    ({"weekly": UNLIMITED}, None, None),
    ({"monthly": 6}, None, None),
    ({"monthly": 13}, None, None),
    ({"monthly": UNLIMITED}, None, None),
    ({"yearly": 1}, None, None),
    ({"yearly": 3}, None, None),
    ({"yearly": 5}, None, None),
    ({}, "14d", lambda t: t - dt.timedelta(days=14)),
    ({}, "36h", lambda t: t - dt.timedelta(hours=36)),
    ({}, "1m", lambda t: t.replace(month=t.month - 1)),
    ({}, "1y2m3d4h", lambda t: one_year_two_months_back(t) - dt.timedelta(days=3, hours=4)),
    ({"daily": 7, "weekly": 4, "monthly": 6, "yearly": 2}, None, None),
    ({"last": 3, "weekly": 10}, "14d", lambda t: t - dt.timedelta(days=14)),
    ({"last": 2, "daily": 10, "weekly": 8, "monthly": 12, "yearly": UNLIMITED}, "3d", three_days),
    ({"daily": UNLIMITED, "weekly": UNLIMITED, "monthly": UNLIMITED}, None, None),
]  # fmt: skip


@pytest.mark.parametrize("delete_failed", [False, True])
@pytest.mark.parametrize(("counts", "within", "cutoff"), CASES)
def test_history_is_pruned_as_restic_would(
    counts: dict[str, int], within: str | None, cutoff: Cutoff | None, delete_failed: bool
) -> None:
    """Over 110 nights with gaps, failed and pending copies, each keep rule alone and combined
    keeps and deletes exactly the copies restic's forget would."""
    copies = history()
    policy = Policy(
        **{f"keep_{rule}": n for rule, n in counts.items()},
        keep_within=parse_duration(within) if within else None,
        delete_failed=delete_failed,
    )
    got = outcome(decide(copies, policy, NOW))
    want = expected(copies, counts, cutoff, delete_failed)
    assert got == want


def test_restic_documented_keep_daily_example() -> None:
    """restic's own --keep-daily 5 example: a day without copies is not counted, and only the
    newest copy of each day is kept."""
    times = [
        "2025-04-21T11:00", "2025-04-22T11:00", "2025-04-23T11:00", "2025-04-24T11:00",
        "2025-04-25T11:00", "2025-04-25T23:00", "2025-04-28T11:00", "2025-04-29T11:00",
        "2025-05-01T11:00", "2025-05-02T11:00", "2025-05-02T23:00",
    ]  # fmt: skip
    copies = [good(when, when) for when in times]
    kept = [
        d.copy.name
        for d in decide(copies, Policy(keep_daily=5), at("2025-05-03T00:00"))
        if d.action == "keep"
    ]
    assert kept == [
        "2025-04-25T23:00",
        "2025-04-28T11:00",
        "2025-04-29T11:00",
        "2025-05-01T11:00",
        "2025-05-02T23:00",
    ]


def test_counts_left_over_keep_the_oldest_copy() -> None:
    """With fewer days than keep_daily asks for, the oldest copy is kept too ("oldest daily"),
    even when a newer copy of its day is kept already."""
    copies = [
        good("d1-early", "2027-05-01T01:00"),
        good("d1-late", "2027-05-01T22:00"),
        good("d2", "2027-05-02T02:00"),
    ]
    got = outcome(decide(copies, Policy(keep_daily=3), NOW))
    assert got == {
        "d1-early": ("keep", {"oldest daily"}),
        "d1-late": ("keep", {"daily"}),
        "d2": ("keep", {"daily", "newest"}),
    }
    used_up = outcome(decide(copies, Policy(keep_daily=2), NOW))
    assert used_up["d1-early"] == ("delete", set())


def test_rules_are_listed_in_a_fixed_order() -> None:
    """A copy kept by several rules names them in the order last, daily, weekly, monthly,
    yearly, within, newest."""
    copies = [good("old", "2027-05-01T01:00"), good("new", "2027-05-02T01:00")]
    policy = Policy(
        keep_last=1,
        keep_daily=1,
        keep_weekly=1,
        keep_monthly=1,
        keep_yearly=1,
        keep_within=parse_duration("1h"),
    )
    (_, newest) = decide(copies, policy, NOW)
    assert newest.rules == ("last", "daily", "weekly", "monthly", "yearly", "within", "newest")


def test_keep_within_counts_back_from_the_newest_copy_not_from_now() -> None:
    """keep_within is measured from the group's newest good copy: copies of a job that stopped
    a year ago are still kept, and one made exactly the duration earlier is not."""
    copies = [
        good("a", "2027-01-01T02:00"),
        good("b", "2027-01-08T02:00"),  # exactly 7 days before the newest: out, as in restic
        good("c", "2027-01-08T02:00:01"),
        good("d", "2027-01-15T02:00"),
        Copy(name="e", group=WEB, created_at=at("2027-01-16T02:00"), state="error"),
    ]
    got = outcome(decide(copies, Policy(keep_within=parse_duration("7d")), NOW))
    assert got == {
        "a": ("delete", set()),
        "b": ("delete", set()),
        "c": ("keep", {"within"}),
        "d": ("keep", {"within", "newest"}),
        "e": ("never", set()),
    }


@pytest.mark.parametrize(
    ("newest", "within", "first_kept", "last_deleted"),
    [
        # a month back from 31 March is "31 February", which rolls over as Go's AddDate does
        ("2027-03-31T02:00", "1m", "2027-03-03T02:00:01", "2027-03-03T02:00"),
        ("2028-03-31T02:00", "1m", "2028-03-02T02:00:01", "2028-03-02T02:00"),
        # a year back from a leap day is 1 March
        ("2028-02-29T02:00", "1y", "2027-03-01T02:00:01", "2027-03-01T02:00"),
        ("2028-03-01T05:00", "1d6h", "2028-02-28T23:00:01", "2028-02-28T23:00"),
    ],
)
def test_keep_within_uses_calendar_months_and_years(
    newest: str, within: str, first_kept: str, last_deleted: str
) -> None:
    """Months and years in keep_within are calendar ones, rolled over at month ends as restic
    does; the boundary instant itself is not within."""
    copies = [good("newest", newest), good("in", first_kept), good("out", last_deleted)]
    policy = Policy(keep_within=parse_duration(within))
    got = outcome(decide(copies, policy, at("2029-01-01T00:00")))
    assert got["in"] == ("keep", {"within"})
    assert got["out"] == ("delete", set())


def test_a_copy_dated_in_the_future_does_not_move_keep_within() -> None:
    """A copy stamped after now (a skewed clock) is kept as the newest, but keep_within still
    counts back from the newest copy made before now."""
    copies = [
        good("old", "2028-02-01T02:00"),
        good("recent", "2028-03-05T02:00"),
        good("future", "2028-04-30T02:00"),
    ]
    got = outcome(decide(copies, Policy(keep_within=parse_duration("7d")), NOW))
    assert got == {
        "old": ("delete", set()),
        "recent": ("keep", {"within"}),
        "future": ("keep", {"within", "newest"}),
    }


def test_days_weeks_and_years_are_taken_in_utc() -> None:
    """Copies stamped in other time zones fall in the UTC day, ISO week and year they were
    made in: 00:30 on 1 January in Berlin is still 2026 and its week 53."""
    berlin = dt.timezone(dt.timedelta(hours=1))
    copies = [
        good("dec-31", "2026-12-31T02:00"),
        Copy(
            name="new-year-berlin",
            group=WEB,
            created_at=dt.datetime(2027, 1, 1, 0, 30, tzinfo=berlin),
            state="available",
        ),
        good("jan-1", "2027-01-01T02:00"),
    ]
    for rule in ("keep_daily", "keep_yearly"):
        got = outcome(decide(copies, Policy(**{rule: 1}), NOW))
        assert got["dec-31"] == ("delete", set()), rule
        assert got["new-year-berlin"] == ("delete", set()), rule
    got = outcome(decide(copies, Policy(keep_daily=3, keep_yearly=3), NOW))
    assert got["new-year-berlin"] == ("keep", {"daily", "yearly"})
    assert got["dec-31"] == ("keep", {"oldest daily", "oldest yearly"})
    assert copies[1].created_at.isoformat() == "2026-12-31T23:30:00+00:00"


def test_iso_week_53_spans_new_year() -> None:
    """ISO week 53 of 2026 runs Monday 28 December to Sunday 3 January: one weekly copy for it,
    and a new week from Monday 4 January 2027."""
    copies = [
        good("mon-dec-28", "2026-12-28T02:00"),
        good("thu-dec-31", "2026-12-31T02:00"),
        good("sun-jan-3", "2027-01-03T02:00"),
        good("mon-jan-4", "2027-01-04T02:00"),
    ]
    got = outcome(decide(copies, Policy(keep_weekly=2), NOW))
    assert {name for name, (action, _) in got.items() if action == "keep"} == {
        "sun-jan-3",
        "mon-jan-4",
    }


def test_ties_in_time_are_broken_by_name_whatever_the_listing_order() -> None:
    """Two copies made at the same instant: the one whose name sorts first counts as the
    newer, however the listing ordered them."""
    copies = [good("b", "2027-05-01T02:00"), good("a", "2027-05-01T02:00")]
    for order in (copies, copies[::-1]):
        got = outcome(decide(order, Policy(keep_last=1), NOW))
        assert got == {"a": ("keep", {"last", "newest"}), "b": ("delete", set())}


def test_failed_nights_never_push_out_good_copies() -> None:
    """A week of failed nights leaves keep_last 2 keeping the last two good copies."""
    copies = [good("good-1", "2027-05-01T02:00"), good("good-2", "2027-05-02T02:00")]
    copies += [
        Copy(
            name=f"failed-{day}", group=WEB, created_at=at(f"2027-05-{day:02}T02:00"), state="error"
        )
        for day in range(3, 10)
    ]
    got = outcome(decide(copies, Policy(keep_last=2), NOW))
    assert got["good-1"] == ("keep", {"last"})
    assert got["good-2"] == ("keep", {"last", "newest"})


def test_newest_good_copy_is_kept_whatever_the_policy() -> None:
    """Each group's newest good copy is kept and says so ("newest"), group by group."""
    copies = [
        good("web-old", "2027-06-01T02:00"),
        good("web-new", "2027-06-02T02:00"),
        good("db-only", "2027-06-02T02:00", DB),
    ]
    decisions = decide(copies, Policy(keep_within=parse_duration("1h")), NOW)
    assert outcome(decisions) == {
        "web-old": ("delete", set()),
        "web-new": ("keep", {"within", "newest"}),
        "db-only": ("keep", {"within", "newest"}),
    }


def test_states_other_than_good_are_never_counted_and_rarely_deleted() -> None:
    """pending copies and states batchcopy does not know are never deleted; failed copies only
    with delete_failed, and the reason says how."""
    copies = [
        good("ok", "2027-05-01T02:00"),
        Copy(name="running", group=WEB, created_at=at("2027-05-02T02:00"), state="pending"),
        Copy(name="broken", group=WEB, created_at=at("2027-04-01T02:00"), state="error"),
        Copy(name="odd", group=WEB, created_at=at("2027-04-02T02:00"), state="unknown"),
    ]
    keep = {d.copy.name: d for d in decide(copies, Policy(keep_last=1), NOW)}
    assert (keep["running"].action, keep["running"].reason) == ("never", "pending")
    assert (keep["broken"].action, keep["broken"].reason) == (
        "never",
        "failed (give --delete-failed)",
    )
    assert keep["odd"].action == "never"
    assert "unknown" in keep["odd"].reason
    drop = {d.copy.name: d for d in decide(copies, Policy(keep_last=1, delete_failed=True), NOW)}
    assert (drop["broken"].action, drop["broken"].reason) == ("delete", "failed")
    assert drop["running"].action == drop["odd"].action == "never"


def test_decisions_come_one_per_copy_in_the_order_given() -> None:
    """decide answers once for every copy, in the order the copies were given."""
    copies = history()[::-1]
    decisions = decide(iter(copies), Policy(keep_daily=7), NOW)
    assert [d.copy for d in decisions] == copies


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("14d", Duration(days=14)),
        ("6m", Duration(months=6)),
        ("1y2m3d4h", Duration(years=1, months=2, days=3, hours=4)),
        ("4h1y", Duration(years=1, hours=4)),
        (" 36h ", Duration(hours=36)),
        ("0d", Duration()),
    ],
)
def test_durations_are_read_with_restics_units(text: str, want: Duration) -> None:
    """Durations use restic's units y, m, d and h, in any order."""
    assert parse_duration(text) == want


def test_duration_prints_as_it_is_written() -> None:
    """A duration shows in restic's form, so a plan can say which rule kept a copy."""
    assert str(parse_duration("4h1y2m")) == "1y2m4h"
    assert str(Duration()) == "0h"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is empty"),
        ("14", "not a duration"),
        ("d", "not a duration"),
        ("2w", "not a duration"),  # restic has no weeks: 14d
        ("1D", "not a duration"),
        ("1.5d", "not a duration"),
        ("-1d", "not a duration"),
        ("1d 2h", "not a duration"),
        ("1d2d", "twice"),
    ],
)
def test_bad_durations_are_refused_naming_the_rule(text: str, says: str) -> None:
    """A duration that cannot be read is refused, naming the rule and the units to use."""
    with pytest.raises(SettingsError) as caught:
        parse_duration(text)
    assert caught.value.field == "keep_within"
    assert says in str(caught.value)
    assert str(caught.value).startswith("keep_within ")
    if says != "is empty":
        assert "y (years), m (months), d (days), h (hours)" in str(caught.value)
    with pytest.raises(SettingsError, match=r"^max_age "):
        parse_duration(text, field="max_age")


@pytest.mark.parametrize(
    ("kwargs", "field", "says"),
    [
        ({"keep_daily": -2}, "keep_daily", "-1 for unlimited"),
        ({"keep_last": True}, "keep_last", "whole number"),
        ({"keep_weekly": 1.5}, "keep_weekly", "whole number"),
        ({"keep_monthly": "3"}, "keep_monthly", "whole number"),
        ({"keep_within": "14d"}, "keep_within", "parse_duration"),
        ({"keep_last": 1, "delete_failed": "yes"}, "delete_failed", "True or False"),
        ({}, "", "no keep rule"),
        ({"delete_failed": True}, "", "no keep rule"),
        ({"keep_within": Duration()}, "", "no keep rule"),
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, object], field: str, says: str) -> None:
    """A policy with a rule out of range, or with no keep rule at all, is refused saying which."""
    with pytest.raises(SettingsError) as caught:
        Policy(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert says in str(caught.value)


def test_no_keep_rule_message_says_what_to_give() -> None:
    """Refusing a policy without keep rules names every rule that could be given."""
    with pytest.raises(SettingsError) as caught:
        Policy()
    for rule in (
        "keep_last",
        "keep_daily",
        "keep_weekly",
        "keep_monthly",
        "keep_yearly",
        "keep_within",
    ):
        assert rule in str(caught.value)


def test_bad_durations_in_a_duration_are_refused() -> None:
    """A Duration built by hand with a negative or fractional part is refused."""
    with pytest.raises(SettingsError, match="days"):
        Duration(days=-1)
    with pytest.raises(SettingsError, match="hours"):
        Duration(hours=1.5)  # type: ignore[arg-type]


def test_naive_times_are_refused() -> None:
    """A creation time or a now without a time zone is refused instead of guessed."""
    with pytest.raises(ValueError, match="web-1"):
        Copy(name="web-1", group=WEB, created_at=dt.datetime(2027, 1, 1), state="available")
    with pytest.raises(ValueError, match="now"):
        decide([], Policy(keep_last=1), dt.datetime(2027, 1, 1))


def test_a_huge_keep_within_keeps_everything() -> None:
    """A keep_within longer than the calendar reaches back keeps every copy instead of failing."""
    copies = [good("a", "2027-01-01T02:00"), good("b", "2027-01-02T02:00")]
    for text in ("9999y", "99999999999999d"):
        got = outcome(decide(copies, Policy(keep_within=parse_duration(text)), NOW))
        assert got["a"] == ("keep", {"within"})


# -- properties over generated histories ------------------------------------------------

BASE = dt.datetime(2026, 11, 15, tzinfo=UTC)
STATES = ["available", "completed", "pending", "error", "unknown"]

histories = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 2_000) | st.integers(0, 20_000),  # hours after BASE
        st.sampled_from(STATES),
    ),
    max_size=40,
).map(
    lambda rows: [
        Copy(name=f"c{i}", group=g, created_at=BASE + dt.timedelta(hours=h), state=s)
        for i, (g, h, s) in enumerate(rows)
    ]
)
counts = st.sampled_from([0, 0, 0, 1, 2, 3, 7, UNLIMITED]) | st.integers(0, 40)
nows = st.integers(0, 22_000).map(lambda h: BASE + dt.timedelta(hours=h))


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """Valid policies: counts, an optional keep_within, delete_failed."""
    within = draw(
        st.none()
        | st.builds(
            Duration,
            years=st.integers(0, 2),
            months=st.integers(0, 13),
            days=st.integers(0, 40),
            hours=st.integers(0, 48),
        )
    )
    values = {f"keep_{rule}": draw(counts) for rule in PERIODS}
    if not any(values.values()) and not within:
        values["keep_last"] = 1
    return Policy(**values, keep_within=within, delete_failed=draw(st.booleans()))


def deleted(decisions: list[Decision]) -> set[str]:
    return {d.copy.name for d in decisions if d.action == "delete"}


@settings(max_examples=300, deadline=None)
@given(copies=histories, policy=policies(), now=nows)
def test_safety_invariants_hold_for_any_history(
    copies: list[Copy], policy: Policy, now: dt.datetime
) -> None:
    """For any history and policy: one decision per copy; each group's newest good copy kept;
    pending and unknown never deleted; failed ones deleted exactly when delete_failed."""
    decisions = decide(copies, policy, now)
    assert [d.copy for d in decisions] == copies
    by_name = {d.copy.name: d for d in decisions}
    for group in {c.group for c in copies}:
        goods = [c for c in copies if c.group == group and c.state in ("available", "completed")]
        if goods:
            newest = min(goods, key=lambda c: (-c.created_at.timestamp(), c.name))
            assert by_name[newest.name].action == "keep"
            assert "newest" in by_name[newest.name].rules
    for d in decisions:
        if d.copy.state in ("pending", "unknown"):
            assert d.action == "never"
        elif d.copy.state == "error":
            assert d.action == ("delete" if policy.delete_failed else "never")
        else:
            assert d.action in ("keep", "delete")
            assert bool(d.rules) == (d.action == "keep")


@settings(max_examples=300, deadline=None)
@given(
    copies=histories,
    counts_=st.fixed_dictionaries(dict.fromkeys(PERIODS, counts)),
    within=st.none() | st.tuples(st.integers(0, 60), st.integers(0, 48)),
    now=nows,
)
def test_any_history_is_pruned_as_restic_would(
    copies: list[Copy],
    counts_: dict[str, int],
    within: tuple[int, int] | None,
    now: dt.datetime,
) -> None:
    """For any history and policy, decide agrees with the plain restic expectation."""
    if not any(counts_.values()) and not (within and any(within)):
        counts_["last"] = 1
    if within and not any(within):
        within = None  # a zero keep_within is no rule, as in restic
    cutoff: Cutoff | None = None
    if within:
        span = dt.timedelta(days=within[0], hours=within[1])
        cutoff = lambda t: t - span  # noqa: E731
    policy = Policy(
        **{f"keep_{rule}": n for rule, n in counts_.items()},
        keep_within=Duration(days=within[0], hours=within[1]) if within else None,
    )
    assert outcome(decide(copies, policy, now)) == expected(copies, counts_, cutoff, now=now)


@settings(max_examples=300, deadline=None)
@given(
    copies=histories,
    policy=policies(),
    now=nows,
    rule=st.sampled_from([*(f"keep_{r}" for r in PERIODS), "keep_within"]),
    more=st.integers(1, 30) | st.just(UNLIMITED),
)
def test_adding_to_a_policy_never_deletes_more(
    copies: list[Copy], policy: Policy, now: dt.datetime, rule: str, more: int
) -> None:
    """Adding a keep rule, raising a count or lengthening keep_within never deletes a copy
    the smaller policy kept."""
    if rule == "keep_within":
        span = policy.keep_within or Duration()
        bigger = dataclasses.replace(
            policy, keep_within=dataclasses.replace(span, days=span.days + max(more, 1))
        )
    else:
        now_count = getattr(policy, rule)
        new = UNLIMITED if more == UNLIMITED or now_count == UNLIMITED else now_count + more
        bigger = dataclasses.replace(policy, **{rule: new})
    assert deleted(decide(copies, bigger, now)) <= deleted(decide(copies, policy, now))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), copies=histories, policy=policies(), now=nows)
def test_the_listing_order_does_not_change_the_outcome(
    data: st.DataObject, copies: list[Copy], policy: Policy, now: dt.datetime
) -> None:
    """The same copies listed in any order get the same decisions."""
    shuffled = data.draw(st.permutations(copies))
    assert outcome(decide(shuffled, policy, now)) == outcome(decide(copies, policy, now))
