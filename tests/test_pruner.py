"""prune_snapshots against the emulator: a seeded history of sixty nights in several
regions, pruned by restic's rules as this file states them, and nothing else ever deleted;
plans that send no delete, lost answers, throttles, lanes that cannot be listed, scopes,
accounts, and a stopped prune resumed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from batchcopy.accounts import Access
from batchcopy.api import RunControl
from batchcopy.emulator import Emulator, FaultConfig, running_emulator
from batchcopy.errors import ReportDirError, SettingsError
from batchcopy.jobs import CopyJob
from batchcopy.prune import PruneResult, PruneStatus, Scope, name_shape
from batchcopy.prune_report import PruneReport
from batchcopy.pruner import prune_snapshots
from batchcopy.retention import Policy, parse_duration
from batchcopy.retry import RetryPolicy
from tests.helpers import settings_for
from tests.malicious import Answers, malicious_server

SOURCE_TAG, RUN_TAG = "batchcopy:source", "batchcopy:run-id"
NIGHTS = 60
FIRST_NIGHT = dt.date(2026, 9, 1)
NOW = dt.datetime(2026, 11, 3, 12, 0, tzinfo=dt.UTC)
BACKFILL = "backfill-1"  # the run that copied the first month at once
FAST = RetryPolicy(base_delay=0.0, max_delay=0.0, deadline=60, max_attempts=50)


@dataclass(frozen=True, slots=True)
class Stream:
    """One source copied every night into one target region."""

    kind: str  # "instance": copies of an automatic snapshot; "disk": of a manual one
    source_region: str
    origin: str  # the instance or disk
    region: str  # the target
    minute: int  # of the day (UTC) the copy is made; jitter may carry it past midnight
    jitter: int = 0  # minutes either side
    offset: int = 0  # shifts which nights fail and which are missing


STREAMS = (
    Stream(kind="instance", source_region="us-east-1", origin="web-1", region="eu-west-1",
           minute=150),
    Stream(kind="instance", source_region="us-east-1", origin="web-1", region="us-west-2",
           minute=200, jitter=20, offset=3),
    Stream(kind="disk", source_region="us-east-1", origin="data-1", region="eu-west-1",
           minute=165, offset=5),
    Stream(kind="instance", source_region="eu-central-1", origin="fra-web", region="ap-south-1",
           minute=23 * 60 + 40, jitter=30, offset=7),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Seeded:
    """A snapshot the history holds, as the expectation sees it."""

    account: str
    region: str
    kind: str
    name: str
    created: dt.datetime
    state: str  # good, error, pending
    ours: bool  # carries batchcopy's label
    label: str = ""  # its batchcopy:source tag, if any
    source_region: str = ""
    origin: str = ""
    source: str = ""  # the label's source: the snapshot, or the automatic one's resource
    run_id: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.account, self.region, self.name)

    @property
    def group(self) -> tuple[str, ...]:
        return (self.account, self.region, self.source_region, self.kind, self.origin)

    @property
    def taken(self) -> dt.datetime:
        """When the data was taken, as retention weighs it: an automatic snapshot's date
        (its label's), else the copy's creation time."""
        if "@" in self.label:
            day = dt.date.fromisoformat(self.label.rpartition("@")[2])
            return dt.datetime.combine(day, dt.time(), dt.UTC)
        return self.created


def history(account: str = "", nights: int = NIGHTS) -> list[Seeded]:
    """Each stream's nights: some failed, some missing (an untagged snapshot, or one with a
    label not batchcopy's, named as the copy would be, in their place), two copies on some
    days, the newest still pending; and a lookalike where batchcopy copied nothing."""
    made: list[Seeded] = []
    for nr, stream in enumerate(STREAMS):
        for night in range(nights):
            date = FIRST_NIGHT + dt.timedelta(days=night)
            day = (date - dt.timedelta(days=1)).isoformat()  # the automatic snapshot's date
            minute = stream.minute + (night * 17 + nr * 5) % (2 * stream.jitter + 1) - stream.jitter
            created = dt.datetime.combine(date, dt.time(), dt.UTC) + dt.timedelta(minutes=minute)
            if stream.kind == "instance":
                name, source, label = (
                    f"{stream.origin}-{day}",
                    stream.origin,
                    f"{stream.source_region}/{stream.origin}@{day}",
                )
            else:
                source = f"{stream.origin}-{day}"
                name, label = f"{source}-dr", f"{stream.source_region}/{source}"
            where = {"account": account, "region": stream.region, "kind": stream.kind}
            origin = {
                "source_region": stream.source_region,
                "origin": stream.origin,
                "source": source,
                "label": label,
            }
            turn = (night + stream.offset) % 13
            if turn == 6 and night < nights - 1:  # a night missing: a lookalike in its place
                made.append(Seeded(**where, name=name, created=created, state="good", ours=False))
                continue
            if turn == 11:  # a label another tool wrote, on a night missing
                foreign = origin | {"label": f"nightly-backup:{stream.origin}"}
                made.append(
                    Seeded(**where, name=name, created=created, state="good", ours=False, **foreign)
                )
                continue
            state = "pending" if night == nights - 1 else "good"
            if (night + stream.offset) % 9 == 4:
                state = "error"
            run_id = BACKFILL if night < 30 else f"nightly-{date}"
            copy = Seeded(
                **where, name=name, created=created, state=state, ours=True, run_id=run_id, **origin
            )
            made.append(copy)
            if night in (20 + nr, 41):  # run again later that day
                later = created + dt.timedelta(hours=5)
                made.append(dataclasses.replace(copy, name=f"{name}-again", created=later))
    made.append(
        Seeded(
            account=account,
            region="ap-northeast-1",
            kind="instance",
            name="web-1-2026-08-31",
            created=dt.datetime(2026, 9, 1, 2, 30, tzinfo=dt.UTC),
            state="good",
            ours=False,
        )
    )
    return made


def seed_of(snapshots: Iterable[Seeded]) -> dict[str, Any]:
    """Emulator seed regions holding ``snapshots``."""
    regions: dict[str, Any] = defaultdict(lambda: {"instanceSnapshots": [], "diskSnapshots": []})
    for snap in snapshots:
        tags = [{"key": SOURCE_TAG, "value": snap.label}] if snap.label else []
        if snap.run_id:
            tags.append({"key": RUN_TAG, "value": snap.run_id})
        item: dict[str, Any] = {
            "name": snap.name,
            "createdAt": snap.created.isoformat(),
            "sizeInGb": 20,
            "tags": tags,
        }
        if snap.state != "good":
            item["state"] = snap.state
        origin = snap.origin or snap.name.split("-2026")[0]
        if snap.kind == "instance":
            item |= {"fromInstanceName": origin, "isFromAutoSnapshot": True}
            regions[snap.region]["instanceSnapshots"].append(item)
        else:
            item["fromDiskName"] = origin
            regions[snap.region]["diskSnapshots"].append(item)
    return {"regions": dict(regions)}


# -- restic's rules, restated -----------------------------------------------------------------


def _go_add_date(moment: dt.datetime, years: int, months: int, days: int) -> dt.datetime:
    """Go's time.AddDate: months and days overflow into the next month."""
    total = moment.year * 12 + moment.month - 1 + years * 12 + months
    first = moment.replace(year=total // 12, month=total % 12 + 1, day=1)
    return first + dt.timedelta(days=moment.day - 1 + days)


def _within(spec: str) -> tuple[int, int, int, int]:
    values = {"y": 0, "m": 0, "d": 0, "h": 0}
    number = ""
    for char in spec:
        if char.isdigit():
            number += char
        else:
            values[char], number = int(number), ""
    return values["y"], values["m"], values["d"], values["h"]


PERIODS: dict[str, Callable[[dt.datetime], object]] = {
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: t.year,
}


def kept_by_restic(good: list[Seeded], rules: dict[str, Any]) -> set[str]:
    """The names restic's forget keeps of one group's good snapshots: walked newest first,
    keep-last n keeps the n newest; keep-daily/weekly/monthly/yearly n keep a snapshot
    whenever its period differs from the last one that rule kept, n times (-1: always),
    and the oldest one while the count lasts; keep-within keeps those newer than the
    newest less that span. And always the newest."""
    good = sorted(good, key=lambda s: s.name)
    good.sort(key=lambda s: s.taken, reverse=True)
    keep = {good[0].name} if good else set()
    last = rules.get("last", 0)
    keep |= {s.name for nr, s in enumerate(good) if last == -1 or nr < last}
    for rule, period in PERIODS.items():
        count, previous = rules.get(rule, 0), None
        for nr, snap in enumerate(good):
            if count == 0:
                break
            value = period(snap.taken)
            if value != previous or nr == len(good) - 1:
                keep.add(snap.name)
                previous = value
                count -= count > 0
    if rules.get("within") and good:
        years, months, days, hours = _within(rules["within"])
        cutoff = _go_add_date(good[0].taken, -years, -months, -days) - dt.timedelta(hours=hours)
        keep |= {s.name for s in good if s.taken > cutoff}
    return keep


def expected_deletes(
    snapshots: Iterable[Seeded],
    rules: dict[str, Any],
    in_scope: Callable[[Seeded], bool] = lambda s: True,
) -> set[tuple[str, str, str]]:
    """What a prune by ``rules`` deletes: per group of batchcopy's copies in scope, every
    good one restic does not keep, and with delete_failed the failed ones."""
    groups: dict[tuple[str, ...], list[Seeded]] = defaultdict(list)
    for snap in snapshots:
        if snap.ours and in_scope(snap):
            groups[snap.group].append(snap)
    doomed: set[tuple[str, str, str]] = set()
    for members in groups.values():
        good = [s for s in members if s.state == "good"]
        kept = kept_by_restic(good, rules)
        doomed |= {s.key for s in good if s.name not in kept}
        if rules.get("delete_failed"):
            doomed |= {s.key for s in members if s.state == "error"}
    return doomed


def policy_of(rules: dict[str, Any]) -> Policy:
    counts = {f"keep_{k}": v for k, v in rules.items() if k in ("last", *PERIODS)}
    within = parse_duration(rules["within"]) if "within" in rules else None
    return Policy(**counts, keep_within=within, delete_failed=rules.get("delete_failed", False))


# -- looking at the emulator ------------------------------------------------------------------


def remaining(emulator: Emulator) -> set[tuple[str, str, str]]:
    """Every snapshot the emulator still holds, as (account, region, name); the base
    account's as ""."""
    held = set()
    for account_id, account in emulator.accounts.items():
        label = "" if account_id == emulator.caller else account_id
        for region, state in account.sim.regions.items():
            held |= {(label, region, name) for name in state.snapshots}
    return held


def keys_of(results: Iterable[PruneResult], *statuses: PruneStatus) -> set[tuple[str, str, str]]:
    return {
        (r.found.account, r.found.snapshot.region, r.found.snapshot.name)
        for r in results
        if r.status in statuses
    }


def assert_nothing_else_touched(
    snapshots: list[Seeded], left: set[tuple[str, str, str]], delete_failed: bool
) -> None:
    """Lookalikes, foreign labels, pending copies, the newest good copy of each group (and
    failed copies without delete_failed) are all still there."""
    newest: dict[tuple[str, ...], Seeded] = {}
    for snap in snapshots:
        if snap.ours and snap.state == "good":
            best = newest.get(snap.group)
            if best is None or (snap.taken, best.name) > (best.taken, snap.name):
                newest[snap.group] = snap
    for snap in snapshots:
        safe = (
            not snap.ours
            or snap.state == "pending"
            or (snap.state == "error" and not delete_failed)
            or newest.get(snap.group) == snap
        )
        if safe:
            assert snap.key in left, f"{snap} was deleted"


def settings(url: str, **overrides: Any) -> Any:
    return settings_for(url, **{"retry": FAST, **overrides})


async def prune(emulator: Emulator, rules: dict[str, Any] | None, **options: Any) -> PruneReport:
    """A prune by ``rules`` against ``emulator``, at NOW."""
    overrides = options.pop("settings", {})
    async with running_emulator(emulator) as url:
        policy = policy_of(rules) if rules is not None else None
        return await prune_snapshots(policy, settings(url, **overrides), now=NOW, **options)


def delete_requests(emulator: Emulator) -> int:
    requests = emulator.stats.requests
    return sum(n for (_, action, _), n in requests.items() if action.startswith("Delete"))


# -- 1, 2: every policy deletes exactly what restic's rules would, and nothing else -----------

POLICIES: list[dict[str, Any]] = [
    {"last": 1},
    {"last": 5},
    {"last": -1},
    {"last": 5, "delete_failed": True},
    {"daily": 7},
    {"daily": 45},
    {"daily": -1},
    {"weekly": 4},
    {"weekly": -1, "delete_failed": True},
    {"monthly": 2},
    {"monthly": -1},
    {"yearly": 1},
    {"yearly": -1},
    {"within": "3d"},
    {"within": "14d", "delete_failed": True},
    {"within": "1m5d12h"},
    {"daily": 7, "weekly": 4},
    {"daily": 7, "weekly": 4, "monthly": 6, "delete_failed": True},
    {"last": 3, "within": "10d"},
    {"daily": 5, "within": "2d", "delete_failed": True},
    {"weekly": 2, "monthly": -1, "yearly": 3},
    {"last": 2, "daily": 3, "weekly": 2, "monthly": 1, "yearly": 1, "within": "5d"},
]


@pytest.mark.parametrize("rules", POLICIES, ids=lambda rules: json.dumps(rules))
async def test_a_prune_deletes_exactly_what_restics_rules_would(rules: dict[str, Any]) -> None:
    """Over sixty nights of copies of several sources in several regions (failed, missing
    and repeated nights, the newest pending, lookalikes), a prune with delete removes
    exactly the copies restic's rules do not keep, each once, and exits 0; lookalikes,
    foreign labels, pending copies and each group's newest good copy stay."""
    snapshots = history()
    emulator = Emulator(seed=seed_of(snapshots), faults=FaultConfig(page_size=40))
    before = remaining(emulator)
    assert before == {s.key for s in snapshots}
    # Only the regions the history uses: a client per region is most of a small prune's
    # time, and the tests below prune every region.
    regions = {s.region for s in snapshots}
    report = await prune(emulator, rules, delete=True, scope=Scope(regions=regions))
    left = remaining(emulator)
    want = expected_deletes(snapshots, rules)
    assert before - left == want
    assert keys_of(report.results, PruneStatus.DELETED) == want
    assert set(emulator.stats.deletes_accepted.values()) <= {1}
    assert len(emulator.stats.deletes_accepted) == len(want)
    assert report.exit_code == 0
    assert len(report.results) == len([s for s in snapshots if s.ours])
    assert_nothing_else_touched(snapshots, left, rules.get("delete_failed", False))


def test_the_history_has_what_the_policies_are_tested_against() -> None:
    """The seeded history holds failed, pending, repeated and missing nights, lookalikes
    and foreign labels in every group, and the policies delete something and keep more
    than the newest, so the tests above can fail."""
    snapshots = history()
    ours = [s for s in snapshots if s.ours]
    assert {s.state for s in ours} == {"good", "error", "pending"}
    assert len({s.group for s in ours}) == len(STREAMS)
    assert len({s.region for s in ours}) == 3
    assert len({s.source_region for s in ours}) == 2
    for stream in STREAMS:
        members = [s for s in snapshots if (s.region, s.kind) == (stream.region, stream.kind)]
        days = [s.created.date() for s in members if s.ours]
        assert len(days) > len(set(days))  # two copies on one day
        assert any(not s.label for s in members)  # an untagged lookalike
        assert any(s.label and not s.ours for s in members)  # a foreign label
    for rules in POLICIES:
        doomed = expected_deletes(snapshots, rules)
        if rules.get("last") != -1 and rules.get("daily") != -1:
            assert doomed, rules
        assert len(doomed) < len(ours) - 2 * len(STREAMS), rules


# -- 3: the plan sends nothing ----------------------------------------------------------------


async def test_a_plan_sends_no_delete_and_names_what_the_prune_then_deletes() -> None:
    """Without delete no delete request reaches the emulator and nothing goes; the plan's
    would_delete rows are exactly what the same prune with delete then deletes."""
    rules = {"daily": 7, "weekly": 4, "delete_failed": True}
    snapshots = history()
    emulator = Emulator(seed=seed_of(snapshots))
    plan = await prune(emulator, rules)
    assert delete_requests(emulator) == 0
    assert not emulator.stats.delete_requests
    assert remaining(emulator) == {s.key for s in snapshots}
    assert plan.exit_code == 0
    would = keys_of(plan.results, PruneStatus.WOULD_DELETE)
    assert would == expected_deletes(snapshots, rules)
    assert plan.summary.freed_gb == 20 * len(would)
    done = await prune(emulator, rules, delete=True)
    assert keys_of(done.results, PruneStatus.DELETED) == would
    assert {s.key for s in snapshots} - remaining(emulator) == would


# -- 4, 5: lost answers and throttles ---------------------------------------------------------


async def test_lost_answers_to_deletes_are_looked_up_never_sent_again() -> None:
    """With half the answers to deletes lost after they took effect, the prune still
    deletes every planned copy, reports each deleted (not failed), exits 0, and no copy
    gets a second delete request."""
    snapshots = history()
    faults = FaultConfig.from_json(
        {
            "seed": 11,
            "drop_after_rate": 0.5,
            "actions": ["DeleteInstanceSnapshot", "DeleteDiskSnapshot"],
        }
    )
    emulator = Emulator(seed=seed_of(snapshots), faults=faults)
    rules = {"daily": 7, "weekly": 2, "delete_failed": True}
    report = await prune(emulator, rules, delete=True)
    want = expected_deletes(snapshots, rules)
    assert report.exit_code == 0
    assert keys_of(report.results, PruneStatus.DELETED) == want
    assert not keys_of(report.results, PruneStatus.FAILED, PruneStatus.NOT_STARTED)
    assert {s.key for s in snapshots} - remaining(emulator) == want
    sent = emulator.stats.delete_requests
    assert len(sent) == len(want)
    assert set(sent.values()) == {1}
    dropped = sum(
        n for (_, action, outcome), n in emulator.stats.requests.items()
        if action.startswith("Delete") and outcome == "dropped"
    )  # fmt: skip
    assert len(want) // 4 < dropped < len(want)
    looked_up = [r for r in report.results if r.reason.startswith("its delete's answer was lost")]
    assert len(looked_up) == dropped
    assert {r.attempts for r in report.results if r.status is PruneStatus.DELETED} == {1}


async def test_deletes_lost_before_or_after_they_took_effect_are_each_done_once() -> None:
    """With deletes dropped before they take effect, dropped after, and failing, every
    planned delete is done and reported deleted, and no delete is ever sent after one
    took effect (no delete is answered NotFoundException)."""
    snapshots = [s for s in history() if s.region == "eu-west-1"]
    faults = FaultConfig.from_json(
        {
            "seed": 5,
            "drop_before_rate": 0.3,
            "drop_after_rate": 0.3,
            "error_rate": 0.2,
            "actions": ["DeleteInstanceSnapshot", "DeleteDiskSnapshot"],
        }
    )
    emulator = Emulator(seed=seed_of(snapshots), faults=faults)
    rules = {"last": 3, "delete_failed": True}
    report = await prune(emulator, rules, delete=True, scope=Scope(regions={"eu-west-1"}))
    want = expected_deletes(snapshots, rules)
    assert report.exit_code == 0
    assert keys_of(report.results, PruneStatus.DELETED) == want
    assert {s.key for s in snapshots} - remaining(emulator) == want
    outcomes = {
        outcome: n
        for (_, action, outcome), n in emulator.stats.requests.items()
        if action.startswith("Delete")
    }
    assert outcomes["dropped"]
    assert outcomes["error"]
    assert "client_error" not in outcomes
    assert set(emulator.stats.deletes_accepted.values()) == {1}


async def test_throttled_deletes_are_retried_until_every_one_is_done() -> None:
    """A region that throttles deletes hard (a small write rate) still ends with every
    planned delete done, the throttles counted, and exit 0."""
    snapshots = [s for s in history() if s.region == "eu-west-1"]
    faults = FaultConfig.from_json({"regions": {"eu-west-1": {"copy_rate": 80, "copy_burst": 2}}})
    emulator = Emulator(seed=seed_of(snapshots), faults=faults)
    rules = {"weekly": 3}
    report = await prune(emulator, rules, delete=True)
    want = expected_deletes(snapshots, rules)
    assert len(want) > 40
    assert report.exit_code == 0
    assert report.summary.throttles > 0
    assert keys_of(report.results, PruneStatus.DELETED) == want
    assert {s.key for s in snapshots} - remaining(emulator) == want
    assert set(emulator.stats.deletes_accepted.values()) == {1}


# -- 6: a lane that cannot be listed ----------------------------------------------------------


async def test_a_lane_that_cannot_be_listed_is_left_whole_and_fails_the_prune() -> None:
    """When one region's disk snapshots cannot be listed, that region is a failed lane:
    nothing in it is deleted (not its instance copies either), the other regions are
    pruned as the policy says, and the prune exits 1."""
    snapshots = history()
    faults = FaultConfig.from_json(
        {"regions": {"eu-west-1": {"error_rate": 1.0, "actions": ["GetDiskSnapshots"]}}}
    )
    emulator = Emulator(seed=seed_of(snapshots), faults=faults)
    rules = {"last": 3}
    retry = RetryPolicy(base_delay=0.0, max_delay=0.0, deadline=60, max_attempts=3)
    report = await prune(emulator, rules, delete=True, settings={"retry": retry})
    assert report.exit_code == 1
    (failure,) = report.summary.lanes_failed
    assert (failure.account, failure.region) == ("", "eu-west-1")
    want = expected_deletes(snapshots, rules, lambda s: s.region != "eu-west-1")
    assert {s.key for s in snapshots} - remaining(emulator) == want
    assert want
    assert expected_deletes(snapshots, rules, lambda s: s.region == "eu-west-1")
    assert not [r for r in report.results if r.found.snapshot.region == "eu-west-1"]
    assert "eu-west-1" not in str(emulator.stats.delete_requests)


# -- 7: scope ---------------------------------------------------------------------------------

# A nightly manifest's row: the copies it makes on any night are web-1-<date> in us-west-2.
TONIGHT = CopyJob(
    line=2,
    source_region="us-east-1",
    target_region="us-west-2",
    source_resource_name="web-1",
    restore_date="2026-10-20",
    target_snapshot_name="web-1-2026-10-20",
)
SCOPES: list[tuple[Scope, Callable[[Seeded], bool]]] = [
    (Scope(regions={"eu-west-1"}), lambda s: s.region == "eu-west-1"),
    (Scope(regions={"us-west-2", "ap-south-1"}), lambda s: s.region in ("us-west-2", "ap-south-1")),
    (Scope(source_regions={"eu-central-1"}), lambda s: s.source_region == "eu-central-1"),
    (Scope(include=["data-*"]), lambda s: fnmatchcase(s.source, "data-*")),
    (Scope(exclude=["web-*"]), lambda s: not fnmatchcase(s.source, "web-*")),
    (
        Scope(include=["*-1*"], exclude=["data-*"]),
        lambda s: fnmatchcase(s.source, "*-1*") and not fnmatchcase(s.source, "data-*"),
    ),
    (Scope(run_id=BACKFILL), lambda s: s.run_id == BACKFILL),
    (
        Scope.of_jobs(
            [
                CopyJob(
                    line=2,
                    source_region="us-east-1",
                    target_region="us-west-2",
                    source_resource_name="web-1",
                    restore_date="2026-10-20",
                    target_snapshot_name="web-1-2026-10-20",
                ),
            ]
        ),
        lambda s: (
            (s.region, s.label.partition("@")[0], name_shape(s.name))
            == ("us-west-2", "us-east-1/web-1", "web-1-{date}")
        ),
    ),
]


SCOPE_IDS = [
    "region",
    "regions",
    "source-region",
    "include",
    "exclude",
    "include-exclude",
    "run-id",
    "manifest",
]


# Named ids: a scope's repr holds sets, whose order changes between processes.
@pytest.mark.parametrize(("scope", "in_scope"), SCOPES, ids=SCOPE_IDS)
async def test_a_scope_limits_what_is_deleted(
    scope: Scope, in_scope: Callable[[Seeded], bool]
) -> None:
    """Target regions, source regions, include and exclude globs, a run id and the copies a
    manifest's jobs make on any night each limit the prune: copies in scope are pruned by
    the policy within what is in scope, copies out of it all stay."""
    snapshots = history()
    emulator = Emulator(seed=seed_of(snapshots))
    rules = {"last": 2, "weekly": 1}
    report = await prune(emulator, rules, delete=True, scope=scope)
    want = expected_deletes(snapshots, rules, in_scope)
    assert want
    assert expected_deletes(snapshots, rules) - want  # something out of scope would go
    assert {s.key for s in snapshots} - remaining(emulator) == want
    assert keys_of(report.results, PruneStatus.DELETED) == want
    assert report.exit_code == 0


# -- 8: accounts ------------------------------------------------------------------------------

MANAGEMENT, WEB, SHOP, DENIED = "111111111111", "222222222222", "333333333333", "444444444444"
ROLE = "OrganizationAccountAccessRole"


async def test_accounts_are_pruned_apart_and_one_unreachable_fails_alone() -> None:
    """A prune over three accounts assumes each one's role; copies of the same names in two
    accounts make groups of their own (the shorter history is not pruned by the longer's
    newer nights); the account whose role cannot be assumed is a failed lane, the others
    are pruned, and the prune exits 1."""
    web, shop = history(WEB), history(SHOP, nights=30)
    seed: dict[str, Any] = {"accounts": {MANAGEMENT: {"name": "management"}}}
    seed["accounts"][WEB] = {"roles": [ROLE], **seed_of(web)}
    seed["accounts"][SHOP] = {"roles": [ROLE], **seed_of(shop)}
    seed["accounts"][DENIED] = {"roles": [], **seed_of(history(DENIED, nights=20))}
    emulator = Emulator(seed=seed)
    rules = {"last": 4}
    report = await prune(
        emulator,
        rules,
        delete=True,
        accounts=(WEB, SHOP, DENIED),
        settings={"access": Access(role_name=ROLE)},
    )
    assert report.exit_code == 1
    (failure,) = report.summary.lanes_failed
    assert (failure.account, failure.region) == (DENIED, "")
    assert emulator.stats.assume_role == {WEB: 1, SHOP: 1, DENIED: 1}
    want = expected_deletes(web + shop, rules)
    assert {(a, r, n) for a, r, n in want if a == SHOP}  # the shop's own groups lose copies
    assert {s.key for s in web + shop} - remaining(emulator) == want
    denied = {s.key for s in history(DENIED, nights=20)}
    assert denied <= remaining(emulator)
    assert keys_of(report.results, PruneStatus.DELETED) == want


# -- 9: a stopped prune, resumed --------------------------------------------------------------


@pytest.mark.parametrize("grace", [5, 0])
async def test_a_stopped_prune_resumes_without_a_second_delete(
    tmp_path: Path, grace: float
) -> None:
    """A journaled prune stopped after some deletes (deletes in flight let finish, or
    cancelled at once), then resumed: every candidate is reported once, those stopped
    with why, no copy gets a second delete, and the deletes add up to the plan."""
    snapshots = history()
    emulator = Emulator(seed=seed_of(snapshots))
    rules = {"daily": 3, "delete_failed": True}
    want = expected_deletes(snapshots, rules)
    control = RunControl(grace=grace)
    deleted: list[PruneResult] = []
    seen: list[str] = []

    def stop_after_ten(result: PruneResult) -> None:
        seen.append(result.key)
        if result.status is PruneStatus.DELETED:
            deleted.append(result)
            if len(deleted) == 10:
                control.stop()

    folder = tmp_path / "prune"
    async with running_emulator(emulator) as url:
        first = await prune_snapshots(
            policy_of(rules),
            settings(url, max_in_flight=2),
            delete=True,
            report_dir=folder,
            control=control,
            on_result=stop_after_ten,
            now=NOW,
        )
        assert first.exit_code == 130
        stopped = keys_of(first.results, PruneStatus.NOT_STARTED)
        assert stopped
        assert len(stopped) < len(want) - 9
        # every row said once as it settled, those stopped with why
        assert sorted(seen) == sorted(r.key for r in first.results)
        for row in first.results:
            if row.status is PruneStatus.NOT_STARTED:
                assert (row.error_code, row.reason[:21]) == ("Interrupted", "the prune was stopped")
        with pytest.raises(SettingsError):
            await prune_snapshots(
                policy_of({"daily": 4}),
                settings(url),
                delete=True,
                report_dir=folder,
                resume=True,
                now=NOW,
            )
        second = await prune_snapshots(
            None, settings(url), delete=True, report_dir=folder, resume=True, now=NOW
        )
    assert second.exit_code == 0
    keys = [r.key for r in second.results]
    assert len(keys) == len(set(keys)) == len([s for s in snapshots if s.ours])
    assert keys_of(second.results, PruneStatus.DELETED) == want
    assert second.summary.counts["deleted"] == len(want)
    assert second.summary.counts["not_started"] == 0
    assert {s.key for s in snapshots} - remaining(emulator) == want
    assert set(emulator.stats.delete_requests.values()) == {1}
    assert len(emulator.stats.delete_requests) == len(want)
    rows = (folder / "results.jsonl").read_text().splitlines()
    assert len(rows) == len(keys)


async def test_a_damaged_prune_journal_is_refused_naming_its_line(tmp_path: Path) -> None:
    """A prune.jsonl with a line that does not read is refused on resume with an error
    naming that line, and no delete is sent."""
    snapshots = [s for s in history() if s.region == "us-west-2"]
    emulator = Emulator(seed=seed_of(snapshots))
    control = RunControl(grace=5)
    folder = tmp_path / "prune"

    def stop_at_once(result: PruneResult) -> None:
        control.stop()

    async with running_emulator(emulator) as url:
        first = await prune_snapshots(
            policy_of({"last": 1}),
            settings(url),
            delete=True,
            report_dir=folder,
            control=control,
            on_result=stop_at_once,
            now=NOW,
        )
        assert keys_of(first.results, PruneStatus.NOT_STARTED)
        journal = folder / "prune.jsonl"
        lines = journal.read_text().splitlines(keepends=True)
        lines[3] = '{"type": "plan", "row": {"name": 7}}\n'
        journal.write_text("".join(lines))
        sent = delete_requests(emulator)
        with pytest.raises(ReportDirError, match=r"prune\.jsonl:4: "):
            await prune_snapshots(
                None, settings(url), delete=True, report_dir=folder, resume=True, now=NOW
            )
    assert delete_requests(emulator) == sent


async def test_a_resumed_prune_fails_only_the_deletes_of_an_account_it_cannot_reach(
    tmp_path: Path,
) -> None:
    """When an account's role can no longer be assumed as a stopped prune resumes, that
    account's lanes cannot be checked again: its deletes are left undone (not_started,
    with why; a later --resume tries again), its lanes are failures naming the error, the
    other account's deletes are done, and the prune exits 1 and writes its report."""
    web, shop = history(WEB, nights=20), history(SHOP, nights=20)
    seed: dict[str, Any] = {"accounts": {MANAGEMENT: {"name": "management"}}}
    seed["accounts"][WEB] = {"roles": [ROLE], **seed_of(web)}
    seed["accounts"][SHOP] = {"roles": [ROLE], **seed_of(shop)}
    emulator = Emulator(seed=seed)
    control = RunControl(grace=5)
    folder = tmp_path / "prune"
    rules = {"last": 2}
    options: dict[str, Any] = {"delete": True, "report_dir": folder, "now": NOW}
    async with running_emulator(emulator) as url:
        reach = settings(url, access=Access(role_name=ROLE))
        first = await prune_snapshots(
            policy_of(rules),
            reach,
            accounts=(WEB, SHOP),
            control=control,
            on_result=lambda result: control.stop(),
            scope=Scope(regions={"eu-west-1", "us-west-2"}),
            **options,
        )
        assert not keys_of(first.results, PruneStatus.DELETED)
        emulator.accounts[SHOP].roles = {}  # the role is gone by the time of the resume
        second = await prune_snapshots(None, reach, accounts=(WEB, SHOP), resume=True, **options)
    assert second.exit_code == 1
    in_scope = {"eu-west-1", "us-west-2"}
    want = expected_deletes(web, rules, lambda s: s.region in in_scope)
    assert keys_of(second.results, PruneStatus.DELETED) == want
    assert {s.key for s in web + shop} - remaining(emulator) == want
    undone = [r for r in second.results if r.status is PruneStatus.NOT_STARTED]
    assert {r.found.account for r in undone} == {SHOP}
    assert keys_of(undone, PruneStatus.NOT_STARTED) == expected_deletes(
        shop, rules, lambda s: s.region in in_scope
    )
    assert all("could not be listed again" in r.reason for r in undone)
    failures = second.summary.lanes_failed
    assert {(f.account, f.error_code) for f in failures} == {(SHOP, "AssumeRoleFailed")}
    assert json.loads((folder / "summary.json").read_text())["exit_code"] == 1


async def test_a_delete_answered_not_found_while_the_snapshot_is_there_is_a_failure() -> None:
    """A server that answers every delete NotFoundException without deleting anything: the
    snapshots are looked up, found still there, and the deletes are reported failed with
    exit 1, never "gone" with exit 0."""
    snapshots = [s for s in history() if s.region == "eu-west-1"]
    emulator = Emulator(seed=seed_of(snapshots))
    refusal = (400, {"__type": "NotFoundException", "message": "Snapshot not found"})
    answers = Answers(refuse={"DeleteInstanceSnapshot": refusal, "DeleteDiskSnapshot": refusal})
    async with running_emulator(emulator) as url, malicious_server(url, answers) as lying:
        few = RetryPolicy(base_delay=0.0, max_delay=0.0, deadline=60, max_attempts=2)
        report = await prune_snapshots(
            policy_of({"last": 3}),
            settings(lying, retry=few),
            scope=Scope(regions={"eu-west-1"}),
            delete=True,
            now=NOW,
        )
    planned = expected_deletes(snapshots, {"last": 3})
    assert planned
    assert report.exit_code == 1
    assert keys_of(report.results, PruneStatus.FAILED) == planned
    assert not keys_of(report.results, PruneStatus.GONE, PruneStatus.DELETED)
    assert {s.key for s in snapshots} <= remaining(emulator)


async def _planned_then_stopped(url: str, folder: Path, rules: dict[str, Any]) -> PruneReport:
    """A journaled prune of eu-west-1 stopped as soon as its plan is made: no delete sent."""
    control = RunControl(grace=0)
    report = await prune_snapshots(
        policy_of(rules),
        settings(url),
        scope=Scope(regions={"eu-west-1"}),
        delete=True,
        report_dir=folder,
        control=control,
        on_result=lambda _: control.stop(),
        now=NOW,
    )
    assert report.exit_code == 130
    return report


async def test_a_resume_deletes_only_what_is_still_as_planned(tmp_path: Path) -> None:
    """Between a stopped prune and its resume, a planned delete was made again under its
    name without batchcopy's label, and in another group a copy the plan keeps was deleted
    by hand: the resume deletes neither that look-alike nor anything of the group whose
    kept copy is gone (it would be left without its newest), deletes the rest, and exits
    1: deletes the plan meant were not done."""
    snapshots = [s for s in history() if s.region == "eu-west-1"]
    emulator = Emulator(seed=seed_of(snapshots))
    rules = {"last": 3}
    folder = tmp_path / "prune"
    async with running_emulator(emulator) as url:
        first = await _planned_then_stopped(url, folder, rules)
        planned = [r for r in first.results if r.decision == "delete"]
        kept = [r for r in first.results if r.decision == "keep"]
        remade = next(r for r in planned if r.found.snapshot.kind == "instance")
        lost = next(r for r in kept if r.found.group != remade.found.group)
        region = emulator.sim.regions["eu-west-1"]
        for gone in (remade, lost):
            region.drop_snapshot(region.snapshots[gone.found.snapshot.name])
        emulator.add_seed(
            {"regions": {"eu-west-1": {"instanceSnapshots": [
                {"name": remade.found.snapshot.name, "fromInstanceName": "web-1"}
            ]}}}
        )  # fmt: skip
        resumed = await prune_snapshots(
            None, settings(url), delete=True, report_dir=folder, resume=True, now=NOW
        )
    rows = {r.found.snapshot.name: r for r in resumed.results}
    assert rows[remade.found.snapshot.name].status is PruneStatus.SKIPPED
    assert remade.found.snapshot.name in region.snapshots  # the look-alike stays
    broken = [r for r in planned if r.found.group == lost.found.group]
    assert broken
    for row in broken:
        assert rows[row.found.snapshot.name].status is PruneStatus.SKIPPED
        assert row.found.snapshot.name in region.snapshots
    done = [r for r in planned if r.found.group == remade.found.group and r is not remade]
    assert done
    assert {rows[r.found.snapshot.name].status for r in done} == {PruneStatus.DELETED}
    assert resumed.exit_code == 1  # deletes the plan meant were left undone


async def test_a_resume_of_an_altered_plan_that_keeps_nothing_deletes_nothing(
    tmp_path: Path,
) -> None:
    """A prune journal edited so that a group's kept copies read "delete": the resume
    finds a group whose plan keeps nothing and deletes none of it."""
    snapshots = [s for s in history() if s.region == "eu-west-1"]
    emulator = Emulator(seed=seed_of(snapshots))
    folder = tmp_path / "prune"
    async with running_emulator(emulator) as url:
        await _planned_then_stopped(url, folder, {"last": 3})
        journal = folder / "prune.jsonl"
        journal.write_text(journal.read_text().replace('"decision":"keep"', '"decision":"delete"'))
        before = set(emulator.sim.regions["eu-west-1"].snapshots)
        resumed = await prune_snapshots(
            None, settings(url), delete=True, report_dir=folder, resume=True, now=NOW
        )
    assert set(emulator.sim.regions["eu-west-1"].snapshots) == before
    assert not keys_of(resumed.results, PruneStatus.DELETED)
    assert delete_requests(emulator) == 0


async def test_a_prune_stopped_before_its_plan_resumes_in_its_own_scope(tmp_path: Path) -> None:
    """A prune of eu-west-1 stopped before its plan was made (nothing decided, nothing
    deleted), then resumed (a resume names no scope of its own): the plan is made by the
    first run's scope, so nothing outside eu-west-1 is deleted."""
    snapshots = history()
    emulator = Emulator(seed=seed_of(snapshots))
    rules = {"last": 2}
    folder = tmp_path / "prune"
    control = RunControl(grace=0)
    control.stop()  # before the listings are done: no plan
    async with running_emulator(emulator) as url:
        first = await prune_snapshots(
            policy_of(rules),
            settings(url),
            scope=Scope(regions={"eu-west-1"}),
            delete=True,
            report_dir=folder,
            control=control,
            now=NOW,
        )
        assert not first.results
        resumed = await prune_snapshots(
            None, settings(url), delete=True, report_dir=folder, resume=True, now=NOW
        )
    want = expected_deletes(snapshots, rules, lambda s: s.region == "eu-west-1")
    assert want
    assert keys_of(resumed.results, PruneStatus.DELETED) == want
    assert {s.key for s in snapshots} - remaining(emulator) == want
    assert resumed.exit_code == 0


async def test_a_resume_looks_up_a_planned_copy_its_listing_leaves_out(tmp_path: Path) -> None:
    """On a resume, a planned copy missing from the listing (a short page) is looked up,
    found still there, and deleted; it is never reported gone while it exists."""
    snapshots = [s for s in history() if s.region == "eu-west-1"]
    emulator = Emulator(seed=seed_of(snapshots))
    folder = tmp_path / "prune"
    async with running_emulator(emulator) as url:
        first = await _planned_then_stopped(url, folder, {"last": 3})
        hidden = next(
            r.found.snapshot.name
            for r in first.results
            if r.decision == "delete" and r.found.snapshot.kind == "instance"
        )

        def short(body: Any) -> Any:
            items = [i for i in body["instanceSnapshots"] if i["name"] != hidden]
            return {**body, "instanceSnapshots": items}

        answers = Answers(rewrite={"GetInstanceSnapshots": short})
        async with malicious_server(url, answers) as proxy:
            resumed = await prune_snapshots(
                None, settings(proxy), delete=True, report_dir=folder, resume=True, now=NOW
            )
    row = next(r for r in resumed.results if r.found.snapshot.name == hidden)
    assert (row.status, row.attempts) == (PruneStatus.DELETED, 1)
    assert hidden not in emulator.sim.regions["eu-west-1"].snapshots
    assert resumed.exit_code == 0
