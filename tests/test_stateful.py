"""A stateful model of a migration's life: runs, faults, stops, cancels, crashes, resumes.

Hypothesis interleaves the steps; in every state it reaches, the two promises hold: the
report has every manifest row exactly once, and no target was ever accepted twice. At the
end, a calm resume finishes every job.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import anyio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from batchcopy import RetryPolicy, Settings, Status, copy_snapshots, load_manifest
from batchcopy.api import RunControl
from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator
from batchcopy.jobs import JobResult
from tests.helpers import write_manifest

ROWS = [
    *(f"us-east-1,eu-west-1,nyc-web-2-2026-11-20,,,,model-{i}" for i in range(5)),
    *(f"us-east-1,ap-south-1,,nyc-api-1,2026-11-19,,model-auto-{i}" for i in range(3)),
]
TARGETS = {row.rsplit(",", 1)[1] for row in ROWS}


class Migration(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.emulator = Emulator(seed=demo_seed())
        self.folder = Path(tempfile.mkdtemp(prefix="batchcopy-model-"))
        self.manifest = load_manifest(write_manifest(self.folder / "jobs.csv", ROWS))
        self.report = self.folder / "report"
        self.journal_exists = False
        self.last: dict[str, str] = {}

    def _run(self, control: RunControl, stop_after: int | None) -> dict[str, str]:
        seen = 0

        def on_result(result: JobResult) -> None:
            nonlocal seen
            seen += 1
            if stop_after is not None and seen >= stop_after:
                control.stop()

        async def main() -> Any:
            async with running_emulator(self.emulator) as url:
                run_settings = Settings(
                    rate=500,
                    burst=100,
                    max_in_flight=4,
                    endpoint_url=url,
                    credentials=("AKIDMODEL", "model-secret"),
                    read_timeout=2,
                    retry=RetryPolicy(
                        base_delay=0.001, max_delay=0.01, max_attempts=50, deadline=30
                    ),
                )
                return await copy_snapshots(
                    self.manifest,
                    run_settings,
                    report_dir=self.report,
                    resume=self.journal_exists,
                    control=control,
                    on_result=on_result,
                )

        report = anyio.run(main, backend="asyncio")
        self.journal_exists = True
        statuses = {r.job.target_snapshot_name: r.status.value for r in report.results}
        rows = [json.loads(x) for x in (self.report / "results.jsonl").read_text().splitlines()]
        assert len(rows) == len(ROWS), "every manifest row exactly once in the report"
        assert {r["target_snapshot_name"] for r in rows} == TARGETS
        return statuses

    @rule(
        error=st.sampled_from([0.0, 0.2, 0.5]),
        drop_before=st.sampled_from([0.0, 0.3]),
        drop_after=st.sampled_from([0.0, 0.3, 0.6]),
        seed=st.integers(0, 1000),
    )
    def weather(self, error: float, drop_before: float, drop_after: float, seed: int) -> None:
        """Change what goes wrong on the server."""
        self.emulator.configure(
            FaultConfig.from_json(
                {
                    "seed": seed,
                    "error_rate": error,
                    "drop_before_rate": drop_before,
                    "drop_after_rate": drop_after,
                }
            )
        )

    @rule(stop_after=st.one_of(st.none(), st.integers(1, len(ROWS))), hard=st.booleans())
    def run(self, stop_after: int | None, hard: bool) -> None:
        """Run (or resume), possibly stopped gently or cancelled after some results."""
        control = RunControl(grace=0.0 if hard else 5.0)
        self.last = self._run(control, stop_after)

    @precondition(lambda self: self.journal_exists)
    @rule(lost=st.integers(1, 6), torn=st.booleans())
    def crash(self, lost: int, torn: bool) -> None:
        """What kill -9 can lose: outcome records not yet synced, and half a line."""
        journal = self.report / "journal.jsonl"
        lines = journal.read_text().splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines.pop()  # a fragment from an earlier crash
        while lost and lines and json.loads(lines[-1]).get("type") == "outcome":
            lines.pop()
            lost -= 1
        text = "".join(lines) + ('{"type": "outcome", "tar' if torn else "")
        journal.write_text(text)

    @invariant()
    def no_target_copied_twice(self) -> None:
        assert all(n == 1 for n in self.emulator.stats.copies_accepted.values())

    def teardown(self) -> None:
        try:
            if self.journal_exists:
                self.emulator.configure(FaultConfig())
                final = self._run(RunControl(), None)
                # Every job has a final status: nothing is left unsent or unknown. (A job can
                # truly fail when harsh weather outlasted its attempts; that is final too.)
                assert Status.NOT_STARTED.value not in final.values(), final
                interrupted = json.loads((self.report / "summary.json").read_text())["counts"][
                    "not_started"
                ]
                assert interrupted == 0
                rows = (self.report / "results.jsonl").read_text()
                assert '"error_code": "Interrupted"' not in rows
                assert set(self.emulator.stats.copies_accepted) <= {
                    f"{r.split(',')[1]}/{r.rsplit(',', 1)[1]}" for r in ROWS
                }
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


Migration.TestCase.settings = settings(max_examples=15, stateful_step_count=8, deadline=None)
test_migration_model = Migration.TestCase
