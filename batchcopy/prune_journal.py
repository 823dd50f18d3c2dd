"""The prune journal: a prune's plan, then each delete's intent before it is sent.

It is JSON Lines in the report folder (``prune.jsonl``), written as a run's journal is
(:class:`batchcopy.journal.RecordFile`: appended, group-committed, under the folder's lock)::

    {"type": "prune", "version": 1, "run_id": ..., "policy": {...}, "scope": {...},
     "accounts": [...], "resume": false, "at": ...}
    {"type": "plan", "row": {...a results row...}}       one per candidate, with its decision
    {"type": "planned", "count": N, "lanes_failed": [...]}  the plan is whole
    {"type": "intent", "key": "eu-west-1/instance/web-1-2026-11-29"}
    {"type": "outcome", "key": ..., "row": {...}}

The whole plan is on disk before the first delete is sent, and a resume continues that
plan, never one made anew: a listing taken later would see the deletes already done and
a newer night, and could decide otherwise. A journal cut off before its plan was whole
has sent no delete; resuming it plans from the start, by the first run's policy, scope and
accounts (kept in its first record: a resume gives no scope of its own). A delete with an
intent and no
outcome may have been done: a resume looks the snapshot up before anything else.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from batchcopy.errors import ReportDirError
from batchcopy.journal import (
    PRUNE_JOURNAL_NAME,
    RecordFile,
    crash_point,
    damaged,
    open_held,
    records,
    refuse_journal,
)
from batchcopy.prune import PruneResult, PruneStatus, Scope

__all__ = ["PruneJournal", "PrunePast"]

VERSION = 1
_TYPES = frozenset({"prune", "plan", "planned", "intent", "outcome"})


@dataclass(slots=True)
class PrunePast:
    """What earlier runs of this prune recorded."""

    run_id: str = ""
    policy: dict[str, Any] | None = None  # the first run's, as Policy.to_json gives it
    scope: dict[str, Any] | None = None  # the first run's, as Scope.to_json gives it
    accounts: list[str] | None = None  # the first run's
    plan: list[PruneResult] | None = None  # None: no whole plan was recorded
    lanes_failed: list[dict[str, str]] = field(default_factory=list)
    intended: set[str] = field(default_factory=set)  # keys sent, or about to be
    outcomes: dict[str, PruneResult] = field(default_factory=dict)  # by key


class PruneJournal(RecordFile):
    """An open prune journal. Use :meth:`open`; record the plan with :meth:`plan`, then
    ``await intent(result)`` before each delete and :meth:`outcome` after it."""

    def __init__(self, path: Path, handle: IO[str], past: PrunePast, lock: IO[str]) -> None:
        super().__init__(path, handle, lock)
        self.past = past

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        resume: bool,
        run_id: str,
        policy: dict[str, Any],
        scope: dict[str, Any] | None = None,
        accounts: list[str] | None = None,
    ) -> PruneJournal:
        """Open the journal in ``directory``: a new one, or (``resume``) the one there,
        read and checked line by line first (a damaged line: :class:`ReportDirError`
        naming it, and nothing is sent)."""
        path = directory / PRUNE_JOURNAL_NAME
        if resume and not path.exists():
            raise ReportDirError(f"{directory}: no {PRUNE_JOURNAL_NAME} to resume from")
        if not resume:
            refuse_journal(directory)
        read = functools.partial(_read, path) if resume else None
        handle, lock, earlier = open_held(directory, path, read)
        past = earlier or PrunePast()
        past.run_id = past.run_id or run_id
        past.policy = past.policy or policy
        if past.scope is None:
            past.scope, past.accounts = scope or {}, accounts or [""]
        journal = cls(path, handle, past, lock)
        header = {"type": "prune", "version": VERSION, "run_id": past.run_id}
        what = {"policy": past.policy, "scope": past.scope, "accounts": past.accounts}
        journal.append(header | what | {"resume": resume, "at": time.time()})
        journal.sync_now()
        crash_point("prune-opened")
        return journal

    def plan(self, results: list[PruneResult], lanes_failed: list[dict[str, str]]) -> None:
        """Record the whole plan, and that it is whole; on disk when this returns."""
        for result in results:
            self.append({"type": "plan", "row": result.to_row()})
        self.append({"type": "planned", "count": len(results), "lanes_failed": lanes_failed})
        self.sync_now()
        self.past.plan = results
        self.past.lanes_failed = lanes_failed
        crash_point("prune-planned")

    async def intent(self, result: PruneResult) -> None:
        """Record that ``result``'s delete is about to be sent; returns once on disk."""
        self.append({"type": "intent", "key": result.key})
        await self.sync()
        crash_point("prune-intent")

    def outcome(self, result: PruneResult) -> None:
        """Record a delete's final result (synced with the next batch, or at close). A
        delete not started is not recorded: a resume still has it to do."""
        if result.status is PruneStatus.NOT_STARTED:
            return
        self.append({"type": "outcome", "key": result.key, "row": result.to_row()})


def _read(path: Path) -> PrunePast:
    past = PrunePast()
    plan: list[PruneResult] = []
    for number, _, record in records(path, _checked):
        kind = record["type"]
        if kind == "prune":
            if record.get("version") != VERSION:
                raise damaged(path, number, f"version {record.get('version')!r} unknown")
            past.run_id = past.run_id or str(record.get("run_id") or "")
            if past.plan is None:
                plan = []  # a plan cut off by a crash, made again by this run
            if past.policy is None and isinstance(record.get("policy"), dict):
                past.policy = record["policy"]
            if past.scope is None:
                scope, accounts = record.get("scope"), record.get("accounts")
                try:
                    Scope.from_json(scope)  # type: ignore[arg-type]  # checked here
                except (KeyError, TypeError, ValueError):
                    raise damaged(path, number, "its first record names no scope") from None
                if not isinstance(accounts, list):
                    raise damaged(path, number, "its first record names no accounts")
                past.scope, past.accounts = scope, [str(account) for account in accounts]
        elif kind == "plan":
            if past.plan is None:  # a plan after a whole one would be a second plan
                plan.append(_result(path, number, record["row"]))
        elif kind == "planned":
            if past.plan is None:
                if record.get("count") != len(plan):
                    raise damaged(path, number, "its plan is missing rows")
                past.plan = plan
                past.lanes_failed = list(record.get("lanes_failed") or [])
        elif past.plan is None:
            raise damaged(path, number, f"an {kind} before the plan was whole")
        elif kind == "intent":
            past.intended.add(record["key"])
        else:
            result = _result(path, number, record["row"])
            if result.key != record["key"]:
                raise damaged(path, number, "its result is not its key's")
            past.outcomes[result.key] = result
    if past.plan is None:
        # Cut off while planning: no delete was sent. Plan again, from the start.
        past.intended.clear()
    return past


def _checked(path: Path, number: int, record: Any) -> dict[str, Any]:
    if not isinstance(record, dict) or record.get("type") not in _TYPES:
        raise damaged(path, number, "not a batchcopy prune record")
    if record["type"] in ("intent", "outcome") and not isinstance(record.get("key"), str):
        raise damaged(path, number, "no key")
    if record["type"] in ("plan", "outcome") and not isinstance(record.get("row"), dict):
        raise damaged(path, number, "no row")
    return record


def _result(path: Path, number: int, row: dict[str, Any]) -> PruneResult:
    try:
        return PruneResult.from_row(row)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise damaged(path, number, f"its row does not read ({exc})") from None
