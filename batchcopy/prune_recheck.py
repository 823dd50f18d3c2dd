"""Before a resumed prune deletes anything: is the plan still true?

A resume continues a plan made earlier, maybe hours or days before. Meanwhile a copy the
plan deletes may have gone, or been made again under the same name (untagged, or another
night's), and a copy the plan keeps may have been deleted by hand; a journal may have been
edited. Deleting by the old plan then could delete what is no longer batchcopy's copy, or
the last copy of an origin. So each lane with deletes left is listed again, whole, and a
delete goes ahead only if:

- its snapshot is still the one planned: batchcopy's label, the same source, the same
  creation time;
- its group still holds every copy the plan keeps there, and the plan keeps at least one
  (the newest good copy always is: a plan that keeps none was not made by batchcopy).

Every other planned delete is settled here, with the reason: gone already, once a look-up
agrees with the listing (``deleted`` when this prune's own earlier delete took effect
unseen, else ``gone``), or ``skipped``: a delete the plan meant and did not do, so the
prune exits 1.
A lane that cannot be listed again leaves its deletes undone (``not_started``, exit 1).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING

from batchcopy.errors import LightsailError
from batchcopy.jobs import SnapshotInfo
from batchcopy.prune import PruneResult, PruneStatus, candidate
from batchcopy.prune_report import LaneFailure
from batchcopy.retry import Guard

if TYPE_CHECKING:
    from batchcopy.pruner import PruneAPI

__all__ = ["LOST", "recheck"]

LOST = "its delete's answer was lost; looked up: gone"
_GONE = "gone before the prune resumed"
_CHANGED = "it is not the snapshot planned (made again, or its label changed); left alone"
_KEPT_GONE = "a copy the plan keeps in its group is gone; left alone (prune anew to plan again)"
_NONE_KEPT = "the plan keeps no copy of its group (an altered journal?); left alone"
_UNLISTED = "its region could not be listed again to check the plan; --resume tries again"


async def recheck(
    api: PruneAPI,
    guard: Guard,
    todo: list[PruneResult],
    plan: Iterable[PruneResult],
    intended: Collection[str],
    settle: Callable[[PruneResult], None],
    failures: list[LaneFailure],
) -> list[PruneResult]:
    """The deletes of ``todo`` that may still go ahead; every other one is settled (with
    ``settle``), and a lane that cannot be listed again is added to ``failures``."""
    listings: dict[str, dict[tuple[str, str], SnapshotInfo] | None] = {}
    firsts = {result.lane: result for result in reversed(todo)}  # a row of each lane
    for lane, first in firsts.items():
        account, region = first.found.account, first.found.snapshot.region
        try:
            reached = await api.account(account)
            listings[lane] = {
                (info.kind, info.name): info async for info in reached.list_snapshots(region, guard)
            }
        except LightsailError as exc:
            failures.append(LaneFailure.of(account, region, exc))
            listings[lane] = None
    kept: dict[tuple[str, ...], int] = {}
    broken: set[tuple[str, ...]] = set()
    for result in plan:
        listing = listings.get(result.lane)
        if result.decision != "keep" or listing is None:
            continue
        kept[result.found.group] = kept.get(result.found.group, 0) + 1
        info = result.found.snapshot
        if not _same(listing.get((info.kind, info.name)), result):
            broken.add(result.found.group)
    go: list[PruneResult] = []
    for result in todo:
        listing = listings[result.lane]
        info = result.found.snapshot
        if listing is None:
            settle(dataclasses.replace(result, reason=_UNLISTED))
            continue
        now = listing.get((info.kind, info.name))
        if now is None:
            # Missing from a listing is no proof of being gone (a page short, a listing
            # not caught up): it is looked up, as a delete answered NotFound would be.
            try:
                reached = await api.account(result.found.account)
                look = functools.partial(reached.find_snapshot, info.region, info.name, info.kind)
                now = await guard(look)
            except LightsailError as exc:
                settle(dataclasses.replace(result, reason=f"{_UNLISTED} ({exc})"))
                continue
        if now is None:
            mine = result.key in intended
            status = PruneStatus.DELETED if mine else PruneStatus.GONE
            settle(dataclasses.replace(result, status=status, reason=LOST if mine else _GONE))
        elif not _same(now, result):
            settle(dataclasses.replace(result, status=PruneStatus.SKIPPED, reason=_CHANGED))
        elif result.found.group in broken or not kept.get(result.found.group):
            why = _KEPT_GONE if result.found.group in broken else _NONE_KEPT
            settle(dataclasses.replace(result, status=PruneStatus.SKIPPED, reason=why))
        else:
            go.append(result)
    return go


def _same(now: SnapshotInfo | None, planned: PruneResult) -> bool:
    """Whether ``now`` is the snapshot ``planned`` was made for: batchcopy's label with the
    same source, and the same creation time."""
    if now is None:
        return False
    found = candidate(now, planned.found.account)
    if found is None:
        return False
    was = planned.found
    label = (found.source_region, found.source, found.date)
    return label == (was.source_region, was.source, was.date) and (
        abs(now.created_at - was.snapshot.created_at) < 1.0
    )
