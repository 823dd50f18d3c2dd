"""Plans (`batchcopy plan`, `run --dry-run`): read-only checks and what a run would cost."""

from __future__ import annotations

import json
from pathlib import Path

from batchcopy import CopyJob
from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator
from batchcopy.plan import GB_MONTH_USD, make_plan
from batchcopy.settings import OnExists
from tests.helpers import EmulatorProcess, manual, run_cli, settings_for, write_manifest

MUTATING = {
    "CopySnapshot",
    "CreateInstanceSnapshot",
    "CreateDiskSnapshot",
    "DeleteInstanceSnapshot",
    "DeleteDiskSnapshot",
    "TagResource",
}


def auto(line: int, region: str, name: str, resource: str, *, date: str | None = None) -> CopyJob:
    return CopyJob(
        line=line,
        source_region="us-east-1",
        target_region=region,
        source_resource_name=resource,
        restore_date=date,
        use_latest=date is None,
        target_snapshot_name=name,
    )


async def test_plan_counts_sizes_and_cost_without_mutating() -> None:
    """A clean manifest plans copies per region with their GB and monthly cost; no write call."""
    jobs = [
        manual(2, "eu-west-1", "p-1"),  # nyc-web-1: 40 GB
        manual(3, "eu-west-1", "p-2", source="nyc-web-2-2026-11-20"),  # 80 GB
        manual(4, "ap-south-1", "p-3", source="nyc-web-data-2026-11-20"),  # 128 GB
        auto(5, "ap-south-1", "p-4", "nyc-web-1", date="2026-11-19"),
    ]
    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url:
        plan = await make_plan(jobs, settings_for(url))
    assert plan.ok, plan.problems
    assert dict(plan.per_region) == {"eu-west-1": 2, "ap-south-1": 2}
    assert dict(plan.gigabytes) == {"eu-west-1": 120, "ap-south-1": 128}
    assert plan.unknown_size == 1
    assert plan.monthly_cost == round(248 * GB_MONTH_USD, 2)
    assert not {action for (_, action, _) in emulator.stats.requests} & MUTATING


async def test_plan_lists_every_problem() -> None:
    """Missing sources, missing automatic snapshots and taken names are all reported; a
    target already copied from the same source is counted as skipped, not a problem."""
    jobs = [
        manual(2, "eu-west-1", "fine"),
        manual(3, "eu-west-1", "orphan", source="no-such-snapshot"),
        auto(4, "eu-west-1", "no-date", "nyc-web-1", date="2026-01-01"),
        auto(5, "eu-west-1", "no-autos", "nyc-web-2"),  # has no automatic snapshots
        auto(6, "eu-west-1", "no-resource", "ghost-1"),
        manual(7, "eu-west-1", "nyc-web-1-dr"),  # exists, same source: a run skips it
        manual(8, "eu-west-1", "nyc-web-1-dr", source="nyc-api-1-2026-11-20"),  # taken
    ]
    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url:
        plan = await make_plan(jobs, settings_for(url))
    codes = {p.line: p.code for p in plan.problems}
    assert codes == {
        3: "SourceNotFound",
        4: "NoAutoSnapshot",
        5: "NoAutoSnapshot",
        6: "SourceNotFound",
        8: "TargetExists",
    }
    assert plan.skipped == 1
    assert dict(plan.per_region) == {"eu-west-1": 1}
    assert not plan.ok


def test_cli_plan_and_dry_run_send_no_mutating_call(live: EmulatorProcess, tmp_path: Path) -> None:
    """`plan` and `run --dry-run` print the plan, exit 1 on problems, and copy nothing."""
    rows = [
        "us-east-1,eu-west-1,nyc-web-1-2026-11-20,,,,dry-1",
        "us-east-1,eu-west-1,missing-source,,,,dry-2",
    ]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    planned = run_cli("plan", str(manifest), "--endpoint-url", live.url, "--json")
    assert planned.returncode == 1, planned.stderr
    body = json.loads(planned.stdout)
    assert (body["per_region"], body["total_gb"]) == ({"eu-west-1": 1}, 40)
    assert [p["code"] for p in body["problems"]] == ["SourceNotFound"]
    dry = run_cli("run", str(manifest), "--dry-run", "--endpoint-url", live.url)
    assert dry.returncode == 1
    assert "m.csv:3: eu-west-1/dry-2: SourceNotFound" in dry.stderr
    assert "nothing was copied" in dry.stdout
    requests = live.stats()["requests"]
    assert not {a for region in requests.values() for a in region} & MUTATING
    ok = run_cli(
        "plan", str(write_manifest(tmp_path / "ok.csv", rows[:1])), "--endpoint-url", live.url
    )
    assert ok.returncode == 0, ok.stderr


async def test_plan_applies_the_runs_rules_to_existing_targets_and_sources() -> None:
    """Targets in error, --on-exists fail, and sources not ready are problems, as in a run."""
    seed = demo_seed()
    seed["regions"]["eu-west-1"]["instanceSnapshots"].append(
        {"name": "broken", "fromInstanceName": "nyc-web-1", "sizeInGb": 40, "state": "error"}
    )
    seed["regions"]["us-east-1"]["instanceSnapshots"].append(
        {"name": "still-pending", "fromInstanceName": "nyc-web-1", "state": "pending"}
    )
    jobs = [
        manual(2, "eu-west-1", "broken"),
        manual(3, "eu-west-1", "nyc-web-1-dr"),
        manual(4, "eu-west-1", "fresh", source="still-pending"),
    ]
    emulator = Emulator(seed=seed)
    async with running_emulator(emulator) as url:
        plan = await make_plan(jobs, settings_for(url, on_exists=OnExists.FAIL))
    assert {p.line: p.code for p in plan.problems} == {
        2: "TargetFailed",
        3: "TargetExists",
        4: "SourceNotReady",
    }


async def test_problems_are_listed_in_manifest_line_order() -> None:
    """Problems come in line order even when a later line's check finishes first."""
    faults = {"regions": {"us-east-1": {"latency_ms": 150}}}  # line 2's source region is slow
    jobs = [
        manual(2, "eu-west-1", "slow-missing", source="nyc-nope-2026-11-20"),
        CopyJob(
            line=3,
            source_region="eu-central-1",
            target_region="eu-west-1",
            source_snapshot_name="fra-nope-2026-11-20",
            target_snapshot_name="fast-missing",
        ),
    ]
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(faults))
    async with running_emulator(emulator) as url:
        plan = await make_plan(jobs, settings_for(url))
    assert [(p.line, p.code) for p in plan.problems] == [
        (2, "SourceNotFound"),
        (3, "SourceNotFound"),
    ]
