"""Many accounts in one run, against the emulator with accounts: a role assumed per account,
a lane per account and region, an account that cannot be reached failing only its rows."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from batchcopy import copy_snapshots
from batchcopy.accounts import Access, AccountAccess, load_accounts_file
from batchcopy.emulator import Emulator, FaultConfig, running_emulator
from batchcopy.errors import SettingsError
from batchcopy.jobs import CopyJob, Status
from batchcopy.plan import make_plan
from tests.conftest import control
from tests.helpers import settings_for

MANAGEMENT = "111111111111"
ROLE = "OrganizationAccountAccessRole"
CLIENTS = [f"{n}" * 12 for n in range(2, 7)]  # 222222222222 ... 666666666666
DENIED = CLIENTS[-1]  # lists no role batchcopy may assume


def fleet_seed(accounts: list[str], snapshots: int = 4) -> dict[str, Any]:
    """A management account and client accounts, each with its own web snapshots in
    us-east-1; the denied one lets no role be assumed."""
    seed: dict[str, Any] = {"accounts": {MANAGEMENT: {"name": "management"}}}
    for account in accounts:
        seed["accounts"][account] = {
            "roles": [] if account == DENIED else [ROLE],
            "regions": {
                "us-east-1": {
                    "instanceSnapshots": [
                        {"name": f"web-{i}", "fromInstanceName": "web", "sizeInGb": 40}
                        for i in range(snapshots)
                    ]
                }
            },
        }
    return seed


def fleet_jobs(
    accounts: list[str], snapshots: int = 4, regions: tuple[str, ...] = ("eu-west-1",)
) -> list[CopyJob]:
    """The same copies in every account: target names repeat across accounts, as they would."""
    jobs = []
    for account in accounts:
        for region in regions:
            for i in range(snapshots):
                jobs.append(
                    CopyJob(
                        line=len(jobs) + 2,
                        account=account,
                        source_region="us-east-1",
                        target_region=region,
                        source_snapshot_name=f"web-{i}",
                        target_snapshot_name=f"web-{i}-dr",
                    )
                )
    return jobs


def with_role(url: str, **overrides: Any) -> Any:
    return settings_for(url, access=Access(role_name=ROLE), **overrides)


async def test_each_account_gets_one_assumed_role_and_its_own_copies() -> None:
    """Five accounts, one of which denies the role: its rows fail AssumeRoleFailed naming
    the role, every other row starts, each account's copies land in that account, and each
    account was assumed exactly once, however many regions and jobs it has."""
    emulator = Emulator(seed=fleet_seed(CLIENTS))
    jobs = fleet_jobs(CLIENTS, regions=("eu-west-1", "ap-south-1"))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(jobs, with_role(url))
    by_account: dict[str, set[str]] = {}
    for result in report.results:
        by_account.setdefault(result.job.account, set()).add(result.status)
        if result.job.account == DENIED:
            assert result.error_code == "AssumeRoleFailed"
            assert f"arn:aws:iam::{DENIED}:role/{ROLE}" in result.error_message
    assert by_account == {**{a: {Status.STARTED} for a in CLIENTS[:-1]}, DENIED: {Status.FAILED}}
    assert report.exit_code == 1
    stats = emulator.stats.to_json()
    assert stats["assume_role"] == dict.fromkeys(CLIENTS, 1)
    copies = stats["copies_accepted"]
    assert len(copies) == 8 * 4
    assert set(copies.values()) == {1}
    for account in CLIENTS[:-1]:
        region = emulator.accounts[account].sim.regions["eu-west-1"]
        assert {f"web-{i}-dr" for i in range(4)} <= set(region.snapshots)
    assert report.summary.by_account[DENIED] == {"failed": 8}
    assert report.summary.by_account[CLIENTS[0]] == {"started": 8}


async def test_each_account_and_region_has_its_own_lane() -> None:
    """Limits belong to the account: each account's region is a lane of its own, with its
    own rate (reported per account and region) and its own requests in flight."""
    accounts = CLIENTS[:2]
    emulator = Emulator(seed=fleet_seed(accounts, snapshots=6))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(fleet_jobs(accounts, snapshots=6), with_role(url))
    assert {r.status for r in report.results} == {Status.STARTED}
    assert set(report.summary.rates) == {f"{a}/eu-west-1" for a in accounts}
    assert set(emulator.stats.to_json()["peak_in_flight"]) == {f"{a}/eu-west-1" for a in accounts}


async def test_expired_keys_mid_run_are_renewed_without_a_lost_or_doubled_copy() -> None:
    """Every key expires while a throttled run goes on: each account is assumed again, every
    job still starts, and no target is copied twice."""
    accounts = CLIENTS[:3]
    faults = FaultConfig.from_json({"copy_rate": 20, "copy_burst": 2})
    emulator = Emulator(seed=fleet_seed(accounts, snapshots=12), faults=faults)
    jobs = fleet_jobs(accounts, snapshots=12)
    expired = False

    async with running_emulator(emulator) as url:

        def halfway(result: Any) -> None:
            nonlocal expired
            if not expired and sum(emulator.stats.copies_accepted.values()) >= 12:
                expired = True
                emulator.expire_credentials()

        report = await copy_snapshots(jobs, with_role(url, rate=5, burst=2), on_result=halfway)
    assert expired
    assert [r.status for r in report.results].count(Status.STARTED) == len(jobs)
    copies = emulator.stats.to_json()["copies_accepted"]
    assert len(copies) == len(jobs)
    assert set(copies.values()) == {1}
    assert all(count >= 2 for count in emulator.stats.assume_role.values())
    assert sum(emulator.stats.assume_role.values()) <= 2 * len(accounts)


async def test_rows_without_an_account_and_the_callers_own_need_no_role() -> None:
    """Rows with no account, and rows naming the base credentials' own account, run with the
    base credentials: no AssumeRole, even without --role-name."""
    seed = fleet_seed([])
    seed["accounts"][MANAGEMENT]["regions"] = fleet_seed(["222222222222"])["accounts"][
        "222222222222"
    ]["regions"]
    emulator = Emulator(seed=seed)
    jobs = [
        dataclasses.replace(
            job, account=account, target_snapshot_name=f"copy-{account or 'base'}-{i}"
        )
        for i, (job, account) in enumerate(
            zip(fleet_jobs([MANAGEMENT], snapshots=2), ["", MANAGEMENT], strict=True)
        )
    ]
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(jobs, settings_for(url))
    assert {r.status for r in report.results} == {Status.STARTED}
    assert emulator.stats.assume_role == {}


async def test_an_account_with_no_role_to_assume_says_how_to_name_one() -> None:
    """Rows of another account with neither --role-name nor an accounts file entry fail
    AssumeRoleFailed saying what to give; nothing is assumed."""
    emulator = Emulator(seed=fleet_seed(CLIENTS[:1]))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(fleet_jobs(CLIENTS[:1], snapshots=1), settings_for(url))
    (result,) = report.results
    assert result.error_code == "AssumeRoleFailed"
    assert "--role-name" in result.error_message
    assert emulator.stats.assume_role == {}


async def test_the_accounts_file_gives_a_role_and_external_id_per_account(tmp_path: Path) -> None:
    """An account's role ARN and external id from the accounts file are the ones used."""
    seed = fleet_seed(CLIENTS[:2])
    seed["accounts"][CLIENTS[1]]["roles"] = [{"name": "Batchcopy", "external_id": "x-1"}]
    emulator = Emulator(seed=seed)
    path = tmp_path / "accounts.yaml"
    lines = [
        "accounts:",
        f'  - account_id: "{CLIENTS[1]}"',
        f"    role: arn:aws:iam::{CLIENTS[1]}:role/Batchcopy",
        "    external_id: x-1",
        "    name: shop",
    ]
    path.write_text("\n".join(lines) + "\n")
    access = Access(role_name=ROLE, accounts=load_accounts_file(path))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(
            fleet_jobs(CLIENTS[:2], snapshots=2), settings_for(url, access=access)
        )
    assert {r.status for r in report.results} == {Status.STARTED}


async def test_a_plan_follows_each_rows_account() -> None:
    """plan reads each row's own account: its sources, its targets, its denied role."""
    emulator = Emulator(seed=fleet_seed([CLIENTS[0], DENIED]))
    async with running_emulator(emulator) as url:
        plan = await make_plan(fleet_jobs([CLIENTS[0], DENIED], snapshots=2), with_role(url))
    assert plan.per_region == {"eu-west-1": 2}
    assert [p.code for p in plan.problems] == ["AssumeRoleFailed"] * 2
    assert emulator.stats.copies_accepted == {}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("accounts:\n  - account_id: 12345\n", "accounts[0].account_id: 12345 is not 12 digits"),
        ("- account_id: '222222222222'\n  rol: x\n", "accounts[0].rol: unknown key"),
        (
            "- account_id: '222222222222'\n  role: arn:aws:iam::333333333333:role/X\n",
            "accounts[0].role: arn:aws:iam::333333333333:role/X is a role of another account",
        ),
        (
            "- account_id: '222222222222'\n- account_id: '222222222222'\n",
            "accounts[1].account_id: 222222222222 is listed twice",
        ),
        ("accounts: [\n", "not valid YAML"),
    ],
)
def test_a_bad_accounts_file_names_the_place(tmp_path: Path, text: str, where: str) -> None:
    """An accounts file that cannot be used names the file, the entry and the key."""
    path = tmp_path / "accounts.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError) as caught:
        load_accounts_file(path)
    assert str(path) in str(caught.value)
    assert where in str(caught.value)


def test_accounts_file_entries_are_values() -> None:
    """An entry holds what it was given; JSON files are read too."""
    entry = AccountAccess(account_id="222222222222", role="Batchcopy", external_id="x-1")
    access = Access(role_name=ROLE, external_id="default", accounts={entry.account_id: entry})
    assert access.role_arn("222222222222") == "arn:aws:iam::222222222222:role/Batchcopy"
    assert access.external_id_for("222222222222") == "x-1"
    assert access.role_arn("333333333333") == f"arn:aws:iam::333333333333:role/{ROLE}"
    assert access.external_id_for("333333333333") == "default"
    assert access.session_for("2026-11-30T03:00:00Z-ab12") == "batchcopy-2026-11-30T03-00-00Z-ab12"


async def test_stats_control_api_counts_assumed_roles() -> None:
    """The emulator's stats say how many AssumeRole calls each account got."""
    emulator = Emulator(seed=fleet_seed(CLIENTS[:2]))
    async with running_emulator(emulator) as url:
        await copy_snapshots(fleet_jobs(CLIENTS[:2], snapshots=1), with_role(url))
        status, stats = await control(url, "GET", "stats")
    assert status == 200
    assert stats["assume_role"] == dict.fromkeys(CLIENTS[:2], 1)
    assert json.dumps(stats)  # plain JSON
