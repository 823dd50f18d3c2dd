"""Prune's candidates: only batchcopy's labelled copies, grouped by origin, within scope."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from batchcopy.jobs import SnapshotInfo
from batchcopy.provenance import RUN_TAG, SOURCE_TAG
from batchcopy.prune import Scope, candidate, decide_prune
from batchcopy.retention import Policy

NIGHT = dt.datetime(2026, 11, 1, 3, 0, tzinfo=dt.UTC)
LATER = NIGHT + dt.timedelta(days=30)  # a prune after every night of these tests


def snapshot(
    name: str,
    *,
    label: str | None = None,
    region: str = "eu-west-1",
    origin: str = "web-1",
    night: int = 0,
    state: str = "available",
    run_id: str = "",
    created: float | None = None,
) -> SnapshotInfo:
    tags = ((SOURCE_TAG, label),) if label is not None else ()
    tags += ((RUN_TAG, run_id),) if run_id else ()
    at = (NIGHT + dt.timedelta(days=night)).timestamp() if created is None else created
    return SnapshotInfo(
        region=region,
        name=name,
        kind="instance",
        state=state,
        origin=origin,
        size_in_gb=80,
        created_at=at,
        tags=tags,
    )


def nightly(night: int, **kwargs: object) -> SnapshotInfo:
    """The copy a nightly discover + run makes of web-1's automatic snapshot that night."""
    date = (NIGHT + dt.timedelta(days=night)).date().isoformat()
    name = f"web-1-auto-{date}-eu-west-1"
    return snapshot(name, label=f"us-east-1/web-1@{date}", night=night, **kwargs)  # type: ignore[arg-type]


def test_only_labelled_copies_are_candidates() -> None:
    """A snapshot named exactly like a nightly copy but without batchcopy's label is never a
    candidate, nor is one whose label is not batchcopy's form."""
    copy = nightly(3, run_id="run-1")
    found = candidate(copy, account="222222222222")
    assert found is not None
    assert (found.source_region, found.source, found.date, found.run_id) == (
        "us-east-1",
        "web-1",
        "2026-11-04",
        "run-1",
    )
    assert found.group == (
        "222222222222", "eu-west-1", "us-east-1", "instance", "web-1", "automatic"
    )  # fmt: skip
    untagged = snapshot(copy.name)
    assert candidate(untagged) is None
    for label in ("", "web-1", "mars-1/web-1", "us-east-1/", "us-east-1/web-1@latest",
                  "us-east-1/web 1", "us-east-1/web-1@2026-02-30"):  # fmt: skip
        assert candidate(snapshot("x-1", label=label)) is None, label


def test_a_manual_snapshots_copies_group_by_the_instance_they_came_from() -> None:
    """Copies of different manual snapshots of one instance are one group (the nights);
    copies into another region, of another instance or in another account are not."""
    nights = [
        candidate(snapshot(f"c-{n}", label=f"us-east-1/web-1-2026-11-0{n}", night=n))
        for n in range(1, 4)
    ]
    assert len({found.group for found in nights if found}) == 1
    other_region = candidate(snapshot("c-9", label="us-east-1/web-1-x", region="ap-south-1"))
    other_origin = candidate(snapshot("c-8", label="us-east-1/api-1-x", origin="api-1"))
    other_account = candidate(snapshot("c-7", label="us-east-1/web-1-y"), account="3" * 12)
    groups = {found.group for found in (*nights, other_region, other_origin, other_account)
              if found}  # fmt: skip
    assert len(groups) == 4


@pytest.mark.parametrize(
    ("scope", "wanted"),
    [
        (Scope(), {"a", "b", "c", "d"}),
        (Scope(regions={"eu-west-1"}), {"a", "b", "d"}),
        (Scope(source_regions={"eu-central-1"}), {"c"}),
        (Scope(include=["web-*"]), {"a", "c", "d"}),
        (Scope(exclude=["web-*"]), {"b"}),
        (Scope(run_id="r2"), {"d"}),
    ],
)
def test_a_scope_narrows_the_candidates(scope: Scope, wanted: set[str]) -> None:
    """Target and source regions, source name globs and one run's copies limit what a
    prune considers."""
    found = [
        candidate(snapshot("a", label="us-east-1/web-1-s", run_id="r1")),
        candidate(snapshot("b", label="us-east-1/api-1-s", origin="api-1")),
        candidate(snapshot("c", label="eu-central-1/web-2@2026-11-01", region="ap-south-1")),
        candidate(snapshot("d", label="us-east-1/web-1-t", run_id="r2")),
    ]
    assert {f.snapshot.name for f in found if f and scope.wants(f)} == wanted


def test_decisions_follow_the_policy_and_never_touch_what_cannot_be_placed() -> None:
    """Ten nights of web-1, one failed and one pending: --keep-last 3 keeps the three newest
    good copies, never deletes the pending or failed one, and a copy of a manual snapshot
    without a creation time is kept with the reason said."""
    history = [nightly(n) for n in range(10)]
    history[8] = nightly(8, state="error")
    history[9] = nightly(9, state="pending")
    undated = snapshot("web-1-undated", label="us-east-1/web-1-before-upgrade", created=0.0)
    found = [f for f in (candidate(s) for s in (*history, undated)) if f]
    now = NIGHT + dt.timedelta(days=11)
    decided = {
        f.snapshot.name[-20:-10]: d for f, d in decide_prune(found, Policy(keep_last=3), now)
    }
    kept = sorted(day for day, d in decided.items() if d.action == "keep")
    assert kept == ["2026-11-06", "2026-11-07", "2026-11-08"]
    assert decided["2026-11-09"].action == decided["2026-11-10"].action == "never"
    assert sorted(day for day, d in decided.items() if d.action == "delete") == [
        f"2026-11-0{n}" for n in range(1, 6)
    ]
    (undated_decision,) = [d for f, d in decide_prune(found, Policy(keep_last=1), now)
                           if f.snapshot.name == "web-1-undated"]  # fmt: skip
    assert undated_decision.action == "never"
    assert "no creation time" in undated_decision.reason


def test_a_manifest_scopes_the_copies_its_jobs_make_on_any_night() -> None:
    """A nightly manifest names tonight's copies, the date in their names: its scope is
    those names with any date, from the same instance (automatic) or source region
    (manual: the origin of tonight's copy), in its target regions. Another job's copies of
    the same instance (an archive under other names), another disk's copies named alike,
    copies of other origins and other regions stay out; a manual job whose copy tonight is
    not there takes none of its other nights."""
    from batchcopy.jobs import CopyJob

    web = [candidate(nightly(n)) for n in range(5)]  # web-1-auto-DATE-eu-west-1, web-1@DATE
    data = [
        candidate(snapshot(f"data-1-2026-11-0{n}-dr", label=f"us-east-1/data-1-2026-11-0{n}",
                           origin="data-1"))
        for n in range(1, 5)
    ]  # fmt: skip
    archive = candidate(snapshot("web-1-archive-2026-11-01", label="us-east-1/web-1@2026-11-01"))
    other = candidate(
        snapshot("api-1-auto-2026-11-01-eu-west-1", label="us-east-1/api-1@2026-11-01")
    )
    elsewhere = candidate(nightly(2, region="ap-south-1"))
    # Another disk's manual copies whose names differ from data-1's only by a date.
    lookalike = candidate(snapshot("data-1-2026-10-01-dr", label="us-east-1/data-1-2026-10-01",
                                   origin="data-9"))  # fmt: skip
    listed = [f for f in (*web, *data, archive, other, elsewhere, lookalike) if f]
    tonight = [
        CopyJob(line=2, source_region="us-east-1", target_region="eu-west-1",
                source_resource_name="web-1", restore_date="2026-11-06",
                target_snapshot_name="web-1-auto-2026-11-06-eu-west-1"),  # not made yet
        CopyJob(line=3, source_region="us-east-1", target_region="eu-west-1",
                source_snapshot_name="data-1-2026-11-04",
                target_snapshot_name="data-1-2026-11-04-dr"),  # made: its origin is data-1
    ]  # fmt: skip
    scope = Scope.of_jobs(tonight)
    assert scope.regions == ("eu-west-1",)  # only the manifest's target regions are listed
    chosen = {found.snapshot.name for found in scope.narrow(listed)}
    assert chosen == {found.snapshot.name for found in (*web, *data) if found}
    assert Scope.of_jobs([]).narrow(listed) == []
    not_made = [dataclasses.replace(tonight[1], target_snapshot_name="data-1-2026-11-09-dr")]
    assert Scope.of_jobs(not_made).narrow(listed) == []
    again = Scope.from_json(json.loads(json.dumps(scope.to_json())))
    assert again == scope  # as a journal keeps it for a resume
    assert len(Scope().narrow(listed)) == len(listed)


def test_a_night_counts_by_the_date_its_data_was_taken_not_when_it_was_copied() -> None:
    """Last night's copy made by a retry after tonight's is still last night's: tonight's
    copy is the newest and kept by --keep-last 1; the retried one goes."""
    tonight = candidate(nightly(5))
    retried = candidate(nightly(4, created=(NIGHT + dt.timedelta(days=5, hours=9)).timestamp()))
    assert tonight is not None
    assert retried is not None
    later = NIGHT + dt.timedelta(days=30)
    decisions = decide_prune([tonight, retried], Policy(keep_last=1), later)
    decided = {found.snapshot.name: decision.action for found, decision in decisions}
    assert decided == {tonight.snapshot.name: "keep", retried.snapshot.name: "delete"}


def test_copies_of_automatic_and_manual_snapshots_of_one_instance_are_apart() -> None:
    """A migration's copy of a manual snapshot of web-1 is not weighed against the nightly
    copies of web-1's automatic snapshots: each keeps its own newest."""
    nights = [candidate(nightly(n)) for n in range(3)]
    migrated = candidate(snapshot("web-1-mig", label="us-east-1/web-1-manual-1", night=9))
    found = [f for f in (*nights, migrated) if f]
    decided = {
        f.snapshot.name: d.action for f, d in decide_prune(found, Policy(keep_last=1), LATER)
    }
    assert decided["web-1-mig"] == "keep"
    assert decided[nightly(2).name] == "keep"
    assert [decided[nightly(n).name] for n in (0, 1)] == ["delete", "delete"]


def test_a_source_glob_names_the_source_or_the_origin() -> None:
    """--include web-1 takes the copies of web-1's automatic snapshots and the copies of
    manual snapshots taken of web-1, whatever those snapshots are called."""
    auto = candidate(nightly(1))
    manual = candidate(snapshot("m-1", label="us-east-1/before-upgrade", origin="web-1"))
    other = candidate(snapshot("m-2", label="us-east-1/api-snap", origin="api-1"))
    found = [f for f in (auto, manual, other) if f]
    assert {f.snapshot.name for f in found if Scope(include=["web-1"]).wants(f)} == {
        nightly(1).name,
        "m-1",
    }
    assert {f.snapshot.name for f in found if Scope(exclude=["web-1"]).wants(f)} == {"m-2"}


def test_a_copy_dated_in_the_future_neither_goes_nor_pushes_the_real_nights_out() -> None:
    """A copy Lightsail dates in 2099 (a wrong clock) is never deleted and does not count
    as the newest: --keep-last 1 keeps the real newest night."""
    nights = [candidate(nightly(n)) for n in range(3)]
    future = dt.datetime(2099, 1, 1, tzinfo=dt.UTC).timestamp()
    odd = candidate(snapshot("web-1-odd", label="us-east-1/web-1-manual", created=future))
    found = [f for f in (*nights, odd) if f]
    now = NIGHT + dt.timedelta(days=3)
    decided = {f.snapshot.name: d for f, d in decide_prune(found, Policy(keep_last=1), now)}
    assert decided["web-1-odd"].action == "never"
    assert "future" in decided["web-1-odd"].reason
    assert decided[nightly(2).name].action == "keep"
    assert [decided[nightly(n).name].action for n in (0, 1)] == ["delete", "delete"]
