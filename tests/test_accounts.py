"""Many accounts in one run, against the emulator with accounts: a role assumed per account,
a lane per account and region, an account that cannot be reached failing only its rows."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiobotocore.session import get_session

from batchcopy import copy_snapshots
from batchcopy.accounts import Access, AccountAccess, load_accounts_file
from batchcopy.api import RunControl, stream_copies
from batchcopy.emulator import Emulator, FaultConfig, running_emulator
from batchcopy.errors import ReportDirError, SettingsError
from batchcopy.jobs import CopyJob, JobResult, Status
from batchcopy.plan import make_plan
from batchcopy.retry import RetryPolicy
from batchcopy.shards import Shard
from tests.conftest import control
from tests.helpers import (
    HEADER,
    EmulatorProcess,
    closed_port,
    read_csv,
    run_cli,
    settings_for,
)

MANAGEMENT = "111111111111"
ROLE = "OrganizationAccountAccessRole"
CALLER_POLICY = Path(__file__).resolve().parent.parent / "examples" / "iam" / "caller-policy.json"
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
    base credentials: no AssumeRole, even without --role-name. (Both kinds in one run are
    refused: see test_the_api_refuses_the_base_account_written_both_ways.)"""
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
        reports = [await copy_snapshots([job], settings_for(url)) for job in jobs]
    assert {r.status for report in reports for r in report.results} == {Status.STARTED}
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


# -- the CLI over many accounts -------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """An emulator process with the management account and five clients, the last one
    denying the role; client 2 sits in /Prod/Web, client 3 in /Prod, the rest at the root."""
    seed = fleet_seed(CLIENTS)
    seed["accounts"][CLIENTS[0]]["ou"] = "/Prod/Web"
    seed["accounts"][CLIENTS[1]]["ou"] = "/Prod"
    path = tmp_path_factory.mktemp("fleet") / "seed.json"
    path.write_text(json.dumps(seed))
    process = EmulatorProcess("--seed", str(path))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def reset_fleet(fleet: EmulatorProcess) -> EmulatorProcess:
    fleet.control("POST", "reset")
    return fleet


def fleet_manifest(path: Path, accounts: list[str], snapshots: int = 4) -> Path:
    rows = [
        f"us-east-1,eu-west-1,web-{i},,,,web-{i}-dr,{account}"
        for account in accounts
        for i in range(snapshots)
    ]
    path.write_text(f"{HEADER.strip()},account\n" + "\n".join(rows) + "\n")
    return path


def test_kill_9_then_resume_across_accounts(reset_fleet: EmulatorProcess, tmp_path: Path) -> None:
    """kill -9 after some intents, then --resume: every row of every account once, each
    target copied at most once, the denied account's rows failed AssumeRoleFailed."""
    manifest = fleet_manifest(tmp_path / "jobs.csv", CLIENTS)
    report = tmp_path / "r"
    common = ["--endpoint-url", reset_fleet.url, "--role-name", ROLE, "--quiet"]
    crashed = run_cli(
        "run", str(manifest), "--report-dir", str(report), "--max-in-flight", "2", *common,
        env={"BATCHCOPY_TEST_CRASH_AT": "after-intent:5"},
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    resumed = run_cli("run", str(manifest), "--resume", str(report), *common)
    assert resumed.returncode == 1, resumed.stderr
    assert "Traceback" not in resumed.stderr  # the denied role is one line per row
    rows = read_csv(report / "results.csv")
    assert len(rows) == 20
    assert sorted(int(r["line"]) for r in rows) == list(range(2, 22))
    for row in rows:
        expected = "failed" if row["account"] == DENIED else "started"
        assert row["status"] == expected, row
    accepted = reset_fleet.stats()["copies_accepted"]
    assert len(accepted) == 16
    assert set(accepted.values()) == {1}


def test_doctor_checks_each_account(reset_fleet: EmulatorProcess, tmp_path: Path) -> None:
    """doctor assumes each account's role and asks Lightsail in its regions: the good
    account passes, the denied one fails with the fix, exit 1."""
    manifest = fleet_manifest(tmp_path / "jobs.csv", [CLIENTS[0], DENIED], snapshots=1)
    done = run_cli(
        "doctor", str(manifest), "--endpoint-url", reset_fleet.url, "--role-name", ROLE,
        "--report-dir", str(tmp_path / "r"),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith(f"OK    account {CLIENTS[0]}: assumed") for line in lines)
    assert any(line.startswith(f"OK    lightsail {CLIENTS[0]}/eu-west-1") for line in lines)
    denied = next(line for line in lines if f"account {DENIED}" in line)
    assert denied.startswith("FAIL")
    assert "AccessDenied" in denied
    assert "fix:" in denied


def test_discover_lists_the_organizations_accounts(
    reset_fleet: EmulatorProcess, tmp_path: Path
) -> None:
    """discover --org lists every ACTIVE account of the organization (the unreachable one
    left out, said on stderr, exit 1); --ou limits it to a unit and its sub-units; the rows
    name their accounts and run as they are."""
    common = [
        "--source-region", "us-east-1", "--target-region", "eu-west-1",
        "--endpoint-url", reset_fleet.url, "--role-name", ROLE,
    ]  # fmt: skip
    everyone = run_cli("discover", "--org", *common, "-o", str(tmp_path / "all.csv"))
    assert everyone.returncode == 1
    assert f"account {DENIED} left out" in everyone.stderr
    rows = read_csv(tmp_path / "all.csv")
    assert {r["account"] for r in rows} == set(CLIENTS[:-1])  # the management one has none
    assert len(rows) == 4 * 4

    excluded = run_cli(
        "discover", "--org", *common, "--exclude-account", DENIED,
        "-o", str(tmp_path / "reachable.csv"),
    )  # fmt: skip
    assert excluded.returncode == 0, excluded.stderr
    assert {r["account"] for r in read_csv(tmp_path / "reachable.csv")} == set(CLIENTS[:-1])
    assert "not among the accounts listed" not in excluded.stderr
    mistyped = run_cli("discover", "--org", *common, "--exclude-account", "999999999999")
    assert mistyped.returncode == 1  # DENIED is listed, and left out as unreachable
    assert "--exclude-account 999999999999: not among the accounts listed" in mistyped.stderr
    ou_id = _unit_id(reset_fleet.url, "Prod")
    under = run_cli("discover", "--ou", ou_id, *common, "-o", str(tmp_path / "prod.csv"))
    assert under.returncode == 0, under.stderr
    assert {r["account"] for r in read_csv(tmp_path / "prod.csv")} == set(CLIENTS[:2])
    ran = run_cli(
        "run", str(tmp_path / "prod.csv"), "--endpoint-url", reset_fleet.url,
        "--role-name", ROLE, "--report-dir", str(tmp_path / "r"), "--quiet",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr


def test_discover_org_where_organizations_refuses_says_what_it_takes(
    live: EmulatorProcess,
) -> None:
    """Base credentials Organizations refuses (here an account in no organization): exit 1
    naming the refusal and what listing an organization takes, nothing written."""
    refused = run_cli(
        "discover", "--org", "--source-region", "us-east-1", "--target-region", "eu-west-1",
        "--endpoint-url", live.url, "--role-name", ROLE,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "AWSOrganizationsNotInUseException" in refused.stderr
    assert "management account" in refused.stderr
    assert "--accounts FILE" in refused.stderr
    assert refused.stdout == ""


def test_discover_lists_the_accounts_files_accounts(
    reset_fleet: EmulatorProcess, tmp_path: Path
) -> None:
    """discover --accounts FILE lists exactly the accounts the file names."""
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps([{"account_id": CLIENTS[2], "role": ROLE}]))
    done = run_cli(
        "discover", "--accounts", str(path), "--source-region", "us-east-1",
        "--target-region", "eu-west-1", "--endpoint-url", reset_fleet.url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {r["account"] for r in rows} == {CLIENTS[2]}


def test_bad_accounts_input_is_exit_2_with_no_request(
    reset_fleet: EmulatorProcess, tmp_path: Path
) -> None:
    """A bad accounts file, or a bad account cell, is exit 2 naming the place; nothing is
    sent."""
    manifest = fleet_manifest(tmp_path / "jobs.csv", CLIENTS[:1], snapshots=1)
    bad_file = tmp_path / "accounts.yaml"
    bad_file.write_text("- account_id: 12\n")
    done = run_cli(
        "run", str(manifest), "--accounts", str(bad_file), "--endpoint-url", reset_fleet.url,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"--accounts {bad_file}: line 1: accounts[0].account_id: 12 is not" in done.stderr
    bad_cell = tmp_path / "bad.csv"
    bad_cell.write_text(f"{HEADER.strip()},account\nus-east-1,eu-west-1,web-0,,,,x,12345\n")
    done = run_cli("run", str(bad_cell), "--endpoint-url", reset_fleet.url)
    assert done.returncode == 2
    assert f"{bad_cell}:2: account:" in done.stderr
    stats = reset_fleet.stats()
    assert stats["copies_accepted"] == {}
    assert "eu-west-1" not in stats["requests"]


def test_the_base_account_written_both_ways_is_exit_2_with_no_copy(
    reset_fleet: EmulatorProcess, tmp_path: Path
) -> None:
    """Rows naming the base credentials' own account by its id beside rows naming none
    (the same account): a target in both would be one copy two rows count as theirs, and
    duplicates are found per account as written, so run and plan refuse, exit 2; rows of
    other accounts beside rows with none are fine."""
    twice = tmp_path / "twice.csv"
    twice.write_text(
        f"{HEADER.strip()},account\n"
        f"us-east-1,eu-west-1,web-0,,,,x-dr,{MANAGEMENT}\n"
        "us-east-1,eu-west-1,web-1,,,,x-dr,\n"
    )
    common = ["--endpoint-url", reset_fleet.url, "--role-name", ROLE]
    for command in ("run", "plan"):
        done = run_cli(command, str(twice), *common)
        assert done.returncode == 2, done.stderr
        assert f"rows name account {MANAGEMENT}, the base credentials' own" in done.stderr
        assert "write it one way" in done.stderr
    stats = reset_fleet.stats()
    assert stats["copies_accepted"] == {}
    assert "eu-west-1" not in stats["requests"]
    other = tmp_path / "other.csv"
    other.write_text(
        f"{HEADER.strip()},account\n"
        f"us-east-1,eu-west-1,web-0,,,,x-dr,{CLIENTS[0]}\n"
        "us-east-1,eu-west-1,web-1,,,,y-dr,\n"
    )
    assert "write it one way" not in run_cli("plan", str(other), *common).stderr


def _unit_id(url: str, name: str) -> str:
    """The id of the organizational unit ``name`` under the root, asked of the emulator."""
    import asyncio

    from aiobotocore.session import get_session

    async def ask() -> str:
        async with get_session().create_client(
            "organizations", region_name="us-east-1", endpoint_url=url
        ) as org:
            (root,) = (await org.list_roots())["Roots"]
            units = await org.list_organizational_units_for_parent(ParentId=root["Id"])
        return next(u["Id"] for u in units["OrganizationalUnits"] if u["Name"] == name)

    return asyncio.run(ask())


async def test_the_end_of_run_table_reads_with_many_accounts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With more accounts than fit, the accounts with failures come first and the rest are
    summed in one row; rates are per region, summed over accounts; metrics stay per region
    unless jobs by account are asked for."""
    from batchcopy.cli.render import ACCOUNTS_SHOWN, _print_summary
    from batchcopy.metrics import write_metrics

    many = [f"{n:012d}" for n in range(200_000_000_001, 200_000_000_001 + ACCOUNTS_SHOWN + 4)]
    seed = fleet_seed([*many, DENIED], snapshots=1)
    emulator = Emulator(seed=seed)
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(fleet_jobs([*many, DENIED], snapshots=1), with_role(url))
    _print_summary(report.summary, as_json=False)
    out = capsys.readouterr().out
    account_rows = [line for line in out.splitlines() if line.startswith("│ ") and "│" in line[2:]]
    first_account = next(line for line in account_rows if line.split("│")[1].strip().isdigit())
    assert DENIED in first_account
    assert f"{len(many) + 1 - ACCOUNTS_SHOWN} other accounts" in out
    assert "Rates at the end: eu-west-1 " in out
    assert "/eu-west-1" not in out
    # The start: each lane's rate, summed, saying over how many (the denied one never started).
    start = report.summary.start_rates[f"{many[0]}/eu-west-1"]
    total = sum(float(s["rate"]) for s in report.summary.start_rates.values())
    assert len(report.summary.start_rates) == len(many)
    over = f"over {len(many)} accounts ({start['source']})"
    assert f"Rates at the start: eu-west-1 {total:g}/s {over}" in out

    plain, detailed = tmp_path / "plain.prom", tmp_path / "detailed.prom"
    write_metrics(report.summary, plain)
    write_metrics(report.summary, detailed, by_account=True)
    assert "batchcopy_account_jobs" not in plain.read_text()
    assert f'batchcopy_account_jobs{{account="{DENIED}",status="failed"}} 1.0' in (
        detailed.read_text()
    )
    assert 'batchcopy_region_copy_rate{target_region="eu-west-1"}' in plain.read_text()


async def test_assumed_keys_are_refreshed_before_they_expire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys of a 15-minute role session are assumed again once a quarter of their life is
    left, before the service would refuse them; until then the same keys serve every call."""
    import datetime as dt

    import botocore.credentials

    from batchcopy.sessions import Sessions

    now = [dt.datetime.now(dt.UTC)]
    monkeypatch.setattr(botocore.credentials, "_local_now", lambda: now[0])  # the fetcher's
    emulator = Emulator(seed=fleet_seed(CLIENTS[:1]))
    async with running_emulator(emulator) as url:
        settings = settings_for(url, access=Access(role_name=ROLE, duration=900))
        sessions = Sessions(settings, now=lambda: now[0])
        try:
            credentials = await sessions.reach(CLIENTS[0])
            assert credentials is not None
            first = (await credentials.get_frozen_credentials()).access_key
            now[0] += dt.timedelta(seconds=600)  # 300 s left: more than a quarter
            assert (await credentials.get_frozen_credentials()).access_key == first
            now[0] += dt.timedelta(seconds=120)  # 180 s left: less than a quarter
            assert (await credentials.get_frozen_credentials()).access_key != first
        finally:
            await sessions.close()
    assert emulator.stats.assume_role == {CLIENTS[0]: 2}


def test_every_problem_of_an_accounts_file_is_told_at_its_line(tmp_path: Path) -> None:
    """All the entries that are wrong are named at once, each at its line, with what to do:
    an id YAML read as a number (an octal one among them), an empty role, an unknown key."""
    path = tmp_path / "accounts.yaml"
    path.write_text(
        "accounts:\n"
        '  - account_id: "222222222222"\n'
        "  - account_id: 012345670123\n"
        '  - account_id: "333333333333"\n'
        '    role: ""\n'
        '  - account_id: "444444444444"\n'
        "    rol: Admin\n"
    )
    with pytest.raises(SettingsError) as caught:
        load_accounts_file(path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("write it in quotes: unquoted, YAML reads it as a number)")
    assert f"{path}: line 3: accounts[1].account_id: 1402433619 is not 12 digits" in lines[0]
    assert f"{path}: line 4: accounts[2].role: empty" in lines[1]
    assert f"{path}: line 6: accounts[3].rol: unknown key" in lines[2]


def test_rows_of_accounts_no_role_reaches_are_refused_before_any_copy(
    reset_fleet: EmulatorProcess, tmp_path: Path
) -> None:
    """A manifest naming accounts with neither --role-name nor a role in --accounts is exit
    2 naming them (the base credentials' own account needs none), with no Lightsail call;
    plan says the same."""
    manifest = tmp_path / "mixed.csv"
    manifest.write_text(
        f"{HEADER.strip()},account\n"
        f"us-east-1,eu-west-1,web-0,,,,a-dr,{CLIENTS[0]}\n"
        "us-east-1,eu-west-1,web-0,,,,b-dr,\n"
        f"us-east-1,eu-west-1,web-0,,,,c-dr,{MANAGEMENT}\n"
    )
    for command in ("run", "plan"):
        done = run_cli(command, str(manifest), "--endpoint-url", reset_fleet.url)
        assert done.returncode == 2, done.stderr
        assert f"no role reaches account {CLIENTS[0]}: give --role-name" in done.stderr
        assert MANAGEMENT not in done.stderr
    stats = reset_fleet.stats()
    assert stats["copies_accepted"] == {}
    assert "eu-west-1" not in stats["requests"]  # no listing, no copy where rows copy to
    assert "AssumeRole" not in stats["requests"].get("us-east-1", {})


def test_discover_takes_an_organizational_unit_by_its_path(
    reset_fleet: EmulatorProcess, tmp_path: Path
) -> None:
    """--ou /Prod lists the accounts under that path of unit names; a path that names no
    unit is exit 2 saying which units there are."""
    common = [
        "--source-region", "us-east-1", "--target-region", "eu-west-1",
        "--endpoint-url", reset_fleet.url, "--role-name", ROLE,
    ]  # fmt: skip
    done = run_cli("discover", "--ou", "/Prod", *common, "-o", str(tmp_path / "prod.csv"))
    assert done.returncode == 0, done.stderr
    assert {r["account"] for r in read_csv(tmp_path / "prod.csv")} == set(CLIENTS[:2])
    wrong = run_cli("discover", "--ou", "/Prod/Shop", *common)
    assert wrong.returncode == 2
    assert "--ou /Prod/Shop: no unit 'Shop' under /Prod (there: Web)" in wrong.stderr
    # Every Organizations read it made is one the example caller policy allows.
    asked = {op for ops in reset_fleet.stats()["requests"].values() for op in ops}
    reads = {f"organizations:{op}" for op in asked if op.startswith("List")}
    caller = json.loads(CALLER_POLICY.read_text())
    allowed = {a for statement in caller["Statement"] for a in statement["Action"]}
    assert "organizations:ListRoots" in reads
    assert reads <= allowed


def test_plain_progress_names_the_accounts_furthest_behind(
    reset_fleet: EmulatorProcess, tmp_path: Path
) -> None:
    """With stderr not a terminal, the status lines of a run over accounts name the
    accounts with the most jobs left."""
    manifest = fleet_manifest(tmp_path / "jobs.csv", CLIENTS[:-1])
    # 4 copies and 4 tags per account at a write a second: past the first status line.
    reset_fleet.control("POST", "config", {"copy_rate": 1, "copy_burst": 1})
    try:
        done = run_cli(
            "run", str(manifest), "--endpoint-url", reset_fleet.url, "--role-name", ROLE,
            "--report-dir", str(tmp_path / "r"),
        )  # fmt: skip
    finally:
        reset_fleet.control("POST", "config", {})
    assert done.returncode == 0, done.stderr
    status = [line for line in done.stderr.splitlines() if "done," in line]
    assert any("most left: " in line for line in status), status
    assert all(account in status[0] for account in CLIENTS[:4] if "most left" in status[0])


def test_sts_that_cannot_be_reached_ends_the_run_as_credentials_do(tmp_path: Path) -> None:
    """STS at an address nothing listens on, when rows name accounts: exit 253 in one line,
    as an unreachable Lightsail endpoint, not a failure per row; the line names STS and the
    variable that sets its address, not only --endpoint-url."""
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(fleet_seed(CLIENTS[:1])))
    process = EmulatorProcess("--seed", str(seed))
    try:
        manifest = fleet_manifest(tmp_path / "jobs.csv", CLIENTS[:1], snapshots=1)
        done = run_cli(
            "run", str(manifest), "--endpoint-url", process.url, "--role-name", ROLE,
            "--report-dir", str(tmp_path / "r"), "--quiet",
            env={"AWS_ENDPOINT_URL_STS": f"http://127.0.0.1:{closed_port()}"},
        )  # fmt: skip
    finally:
        process.stop()
    assert done.returncode == 253, done.stderr
    assert "batchcopy: cannot connect to STS" in done.stderr
    assert "check --endpoint-url and AWS_ENDPOINT_URL_STS" in done.stderr
    assert "Traceback" not in done.stderr


# -- hostile STS, Organizations and files -----------------------------------------------------


@asynccontextmanager
async def fake_aws(handler: Any) -> AsyncIterator[str]:
    """A loopback server answering every POST with ``handler(request)``."""
    from aiohttp import web

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_an_identity_that_contradicts_itself_is_no_answer() -> None:
    """GetCallerIdentity naming one account while its Arn is another's is a malformed
    answer: it decides which keys a row's copies are made with."""
    from aiohttp import web

    from batchcopy.errors import TransientError
    from batchcopy.sessions import caller_identity

    async def lie(request: Any) -> Any:
        body = (
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<GetCallerIdentityResult><Arn>arn:aws:iam::111111111111:user/x</Arn>"
            f"<UserId>AIDA</UserId><Account>{CLIENTS[0]}</Account></GetCallerIdentityResult>"
            "<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>"
        )
        return web.Response(text=body, content_type="text/xml")

    async with fake_aws(lie) as url:
        with pytest.raises(TransientError, match="is not the Arn's"):
            await caller_identity(settings_for(url))


async def test_keys_that_come_back_expired_fail_their_account_not_the_run() -> None:
    """A refresh that hands back keys already expired is the account's AssumeRoleFailed
    (a batchcopy error the engine reports per row), not a RuntimeError ending the run."""
    import datetime as dt

    from batchcopy.errors import PermanentError
    from batchcopy.sessions import RoleCredentials

    class Expired:
        _role_arn = f"arn:aws:iam::{CLIENTS[0]}:role/{ROLE}"

        async def fetch_credentials(self) -> dict[str, Any]:
            past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
            return {
                "access_key": "ASIAX",
                "secret_key": "s",
                "token": "t",
                "expiry_time": past.isoformat(),
            }

    credentials = RoleCredentials(Expired(), {}, 225)  # type: ignore[arg-type]
    with pytest.raises(PermanentError) as caught:
        await credentials.get_frozen_credentials()
    assert caught.value.code == "AssumeRoleFailed"
    assert Expired._role_arn in caught.value.message


async def test_a_flaky_sts_at_start_is_ridden_out() -> None:
    """Half of all AssumeRole calls failing (503) at the start of a run over ten accounts:
    each account is retried until it is reached, and every job starts."""
    accounts = [f"{n:012d}" for n in range(300_000_000_001, 300_000_000_011)]
    faults = FaultConfig.from_json({"seed": 3, "error_rate": 0.5, "actions": ["AssumeRole"]})
    emulator = Emulator(seed=fleet_seed(accounts, snapshots=1), faults=faults)
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(fleet_jobs(accounts, snapshots=1), with_role(url))
    assert {r.status for r in report.results} == {Status.STARTED}
    assert sum(emulator.stats.assume_role.values()) > len(accounts)  # some were retried


async def test_keys_expired_again_and_again_still_lose_nothing() -> None:
    """Every key expired after every fourth result of a throttled run: each call renews as
    often as it must (a few times at most), every job starts, no target is copied twice."""
    accounts = CLIENTS[:3]
    faults = FaultConfig.from_json({"copy_rate": 20, "copy_burst": 2})
    emulator = Emulator(seed=fleet_seed(accounts, snapshots=8), faults=faults)
    jobs = fleet_jobs(accounts, snapshots=8)
    seen = 0

    def expire_often(result: Any) -> None:
        nonlocal seen
        seen += 1
        if seen % 4 == 0:
            emulator.expire_credentials()

    async with running_emulator(emulator) as url:
        report = await copy_snapshots(jobs, with_role(url, rate=5, burst=2), on_result=expire_often)
    assert [r.status for r in report.results].count(Status.STARTED) == len(jobs)
    copies = emulator.stats.to_json()["copies_accepted"]
    assert len(copies) == len(jobs)
    assert set(copies.values()) == {1}


async def test_an_organization_that_pages_forever_is_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ListAccounts answering an empty page with a new token, for ever: the listing stops
    at the page cap with an error naming it, instead of running on."""
    from aiohttp import web

    from batchcopy import sessions
    from batchcopy.errors import TransientError

    monkeypatch.setattr(sessions, "_ORG_PAGES", 30)
    count = 0

    async def endless(request: Any) -> Any:
        nonlocal count
        count += 1
        body = json.dumps({"Accounts": [], "NextToken": f"t{count}"})
        return web.Response(text=body, content_type="application/x-amz-json-1.1")

    async with fake_aws(endless) as url:
        with pytest.raises(TransientError, match="list_accounts was still paging after 30"):
            await sessions.organization_accounts(settings_for(url))
    assert count == 30


def test_an_accounts_file_with_aliases_or_too_large_is_refused(tmp_path: Path) -> None:
    """YAML aliases (which nest into a file bomb) and a file over the size limit are each a
    one-line refusal naming the file, before anything is expanded or read."""
    from batchcopy import accounts

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('a: &a ["x","x","x"]\nb: &b [*a,*a,*a]\naccounts: [{account_id: *b}]\n')
    with pytest.raises(SettingsError, match="aliases"):
        load_accounts_file(bomb)
    big = tmp_path / "big.yaml"
    big.write_bytes(b" " * (accounts.MAX_ACCOUNTS_FILE + 1))
    with pytest.raises(SettingsError, match="larger than 16 MB"):
        load_accounts_file(big)


async def test_jobs_open_at_once_are_capped_per_target_region_across_accounts() -> None:
    """--max-in-flight is per target region, as its help says: four accounts' lanes into one
    region together never hold more copies and tags open than that, however many lanes."""
    accounts = CLIENTS[:-1]
    emulator = Emulator(seed=fleet_seed(accounts, snapshots=6))
    emulator.configure(FaultConfig.from_json({"latency_ms": 30}))
    async with running_emulator(emulator) as url:
        settings = with_role(url, max_in_flight=2)
        report = await copy_snapshots(fleet_jobs(accounts, snapshots=6), settings)
    assert {r.status for r in report.results} == {Status.STARTED}
    assert emulator.stats.peak_writes_in_flight["eu-west-1"] == 2


def _interleaved(accounts: list[str], snapshots: int) -> list[CopyJob]:
    """``snapshots`` copies per account into eu-west-1, the accounts' rows taking turns."""
    jobs = fleet_jobs(accounts, snapshots=snapshots)
    ordered = sorted(jobs, key=lambda job: (job.source_snapshot_name, accounts.index(job.account)))
    return [dataclasses.replace(job, line=n + 2) for n, job in enumerate(ordered)]


async def _until_done(
    accounts: list[str], jobs: list[CopyJob], settings: Any, emulator: Emulator
) -> list[JobResult]:
    """Run ``jobs``, stopping the run once every job of ``accounts`` has a result (or after
    30 s, whichever is first); the results in the order they came."""
    control = RunControl(grace=1.0)
    results: list[JobResult] = []
    waiting = {job.target for job in jobs if job.account in accounts}

    def seen(result: JobResult) -> None:
        results.append(result)
        waiting.discard(result.job.target)
        if not waiting:
            control.stop()

    async with running_emulator(emulator) as url:
        with anyio.move_on_after(30):  # a bound, so a stalled run fails instead of hanging
            await copy_snapshots(jobs, settings(url), control=control, on_result=seen)
    return results


async def test_a_throttled_account_does_not_starve_the_others_in_its_region() -> None:
    """Four accounts Lightsail throttles hard (a write a second) and four it does not, into
    one region with room for eight jobs open at once: jobs waiting for their account's
    pace hold none of the region's room, and no lane holds more than its share, so the
    other accounts' copies all start while the throttled ones have barely begun."""
    slow, fast = CLIENTS[:4], [*(f"{n}" * 12 for n in (7, 8, 9)), "123456789012"]
    seed = fleet_seed([*slow, *fast], snapshots=4)
    limits = {a: {"copy_rate": 1, "copy_burst": 1} for a in slow}
    emulator = Emulator(seed=seed, faults=FaultConfig.from_json({"accounts": limits}))
    jobs = _interleaved([*slow, *fast], snapshots=4)
    results = await _until_done(fast, jobs, lambda url: with_role(url, max_in_flight=8), emulator)
    done = [r for r in results if r.status is Status.STARTED]
    assert {r.job.target for r in done if r.job.account in fast} == {
        j.target for j in jobs if j.account in fast
    }
    # A write a second: a copy or two each while the others finish (10-12 when they
    # waited for the throttled accounts' room).
    assert sum(r.job.account in slow for r in done) <= 6  # of 16


async def test_a_slow_account_early_in_the_manifest_does_not_hold_up_the_rest() -> None:
    """A manifest that lists a throttled account's 300 rows first, then three others':
    the others' copies start while the first account's are still being paced out (its
    rows wait in its own lane's queue; the reading goes on to the rest)."""
    slow, rest = CLIENTS[0], CLIENTS[1:4]
    seed = fleet_seed([slow, *rest], snapshots=300)
    for account in rest:
        seed["accounts"][account]["regions"]["us-east-1"]["instanceSnapshots"][5:] = []
    limits = {slow: {"copy_rate": 1, "copy_burst": 1}}
    emulator = Emulator(seed=seed, faults=FaultConfig.from_json({"accounts": limits}))
    jobs = fleet_jobs([slow], snapshots=300) + fleet_jobs(rest, snapshots=5)
    jobs = [dataclasses.replace(job, line=n + 2) for n, job in enumerate(jobs)]
    results = await _until_done(rest, jobs, with_role, emulator)
    started = {r.job.target for r in results if r.status is Status.STARTED}
    assert {j.target for j in jobs if j.account in rest} <= started
    assert sum(r.job.account == slow for r in results if r.status is Status.STARTED) < 50


async def test_a_throttled_assume_role_is_paced_not_stormed() -> None:
    """STS throttling the caller's AssumeRole (two a second here): every account is still
    reached and every row starts, with each AssumeRole request paced on a budget that
    slows on throttles (botocore's own retries are off, so none goes unpaced), not retried
    by every account at once (thousands of calls in a minute)."""
    accounts = [f"{200_000_000_000 + n:012d}" for n in range(30)]
    seed = fleet_seed(accounts, snapshots=1)
    # STS's faults: the caller's read bucket, for the actions named.
    sts = {"read_rate": 2, "read_burst": 1, "actions": ["AssumeRole"]}
    emulator = Emulator(seed=seed, faults=FaultConfig.from_json({"accounts": {MANAGEMENT: sts}}))
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(fleet_jobs(accounts, snapshots=1), with_role(url))
    assert report.summary.counts["started"] == len(accounts)
    calls = sum(emulator.stats.assume_role.values())
    # 4,546 when every account retried at will; 169-433 when each paced try was up to
    # five of botocore's own attempts. Paced one request a try: 34.
    assert calls <= 2 * len(accounts), calls


async def test_keys_renewed_while_sts_throttles_are_retried_not_failed() -> None:
    """A renewal (or the first fetch) that STS throttles waits its turn and is tried
    again, under the retry policy, instead of failing the account's calls at once; a
    throttle that lasts past the policy still fails them, as AssumeRoleFailed."""
    import datetime as dt

    from botocore.exceptions import ClientError

    from batchcopy.errors import PermanentError
    from batchcopy.retry import RetryPolicy
    from batchcopy.sessions import RoleCredentials

    class Throttled:
        _role_arn = f"arn:aws:iam::{CLIENTS[0]}:role/{ROLE}"

        def __init__(self, refusals: int) -> None:
            self.refusals, self.calls = refusals, 0

        async def fetch_credentials(self) -> dict[str, Any]:
            self.calls += 1
            if self.calls <= self.refusals:
                error = {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}
                raise ClientError(error, "AssumeRole")  # type: ignore[arg-type]
            later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
            return {"access_key": "ASIAX", "secret_key": "s", "token": "t",
                    "expiry_time": later.isoformat()}  # fmt: skip

    policy = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05, deadline=1.0)
    fetcher = Throttled(refusals=3)
    credentials = RoleCredentials(fetcher, {}, 225, policy=policy)  # type: ignore[arg-type]
    assert (await credentials.get_frozen_credentials()).access_key == "ASIAX"
    assert fetcher.calls == 4
    hopeless = RoleCredentials(Throttled(refusals=10**6), {}, 225, policy=policy)  # type: ignore[arg-type]
    with pytest.raises(PermanentError) as caught:
        await hopeless.get_frozen_credentials()
    assert caught.value.code == "AssumeRoleFailed"
    assert "Throttling" in caught.value.message


async def test_the_api_refuses_the_base_account_written_both_ways(tmp_path: Path) -> None:
    """copy_snapshots, given rows naming the base credentials' own account by its id beside
    rows naming none (a manifest, or jobs in code), raises before any request: a target in
    both would be one copy that two rows count as theirs."""
    from batchcopy import load_manifest

    twice = tmp_path / "twice.csv"
    twice.write_text(
        f"{HEADER.strip()},account\n"
        f"us-east-1,eu-west-1,web-0,,,,x-dr,{MANAGEMENT}\n"
        "us-east-1,eu-west-1,web-1,,,,x-dr,\n"
    )
    emulator = Emulator(seed=fleet_seed(CLIENTS[:1]))
    async with running_emulator(emulator) as url:
        for jobs in (load_manifest(twice), list(load_manifest(twice).jobs())):
            with pytest.raises(SettingsError, match="write it one way"):
                await copy_snapshots(jobs, with_role(url))
            # Over the whole manifest, not a shard's part: the two ways may fall apart.
            for index in range(4):
                with pytest.raises(SettingsError, match="write it one way"):
                    await copy_snapshots(jobs, with_role(url), shard=Shard(index=index, count=4))
            with pytest.raises(SettingsError, match="write it one way"):
                async with stream_copies(jobs, with_role(url)):
                    pass
    assert emulator.stats.copies_accepted == {}


async def test_a_resume_in_another_account_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows that name no account run in the base credentials' account, and the journal
    says which: a resume whose credentials are another account's is refused before any
    copy (its rows would be copied there, and what the first run did reported as done),
    unless forced; a resume in the same account goes on."""
    seed = fleet_seed(CLIENTS[:1])
    seed["accounts"][MANAGEMENT]["regions"] = seed["accounts"][CLIENTS[0]]["regions"]
    emulator = Emulator(seed=seed)
    jobs = [dataclasses.replace(job, account="") for job in fleet_jobs(CLIENTS[:1])]
    folder = tmp_path / "r"
    async with running_emulator(emulator) as url:
        first = await copy_snapshots(jobs[:2], settings_for(url), report_dir=folder)
        header = json.loads((folder / "journal.jsonl").read_text().splitlines()[0])
        assert header["base_account"] == MANAGEMENT
        again = await copy_snapshots(jobs[:2], settings_for(url), report_dir=folder, resume=True)
        assert [r.status for r in again.results] == [Status.STARTED] * 2
        async with get_session().create_client(
            "sts", "us-east-1", endpoint_url=url, aws_access_key_id="AKIDTEST",
            aws_secret_access_key="test-secret",
        ) as sts:  # fmt: skip
            answer = await sts.assume_role(
                RoleArn=f"arn:aws:iam::{CLIENTS[0]}:role/{ROLE}", RoleSessionName="test"
            )
        keys = answer["Credentials"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["SecretAccessKey"])
        monkeypatch.setenv("AWS_SESSION_TOKEN", keys["SessionToken"])
        other = settings_for(url, credentials=None)
        with pytest.raises(ReportDirError, match=f"ran in account {MANAGEMENT}; these"):
            await copy_snapshots(jobs[:2], other, report_dir=folder, resume=True)
        assert set(emulator.stats.copies_accepted) == {
            f"{MANAGEMENT}/eu-west-1/web-0-dr",
            f"{MANAGEMENT}/eu-west-1/web-1-dr",
        }
        forced = await copy_snapshots(jobs[:2], other, report_dir=folder, resume=True, force=True)
    assert [r.status for r in first.results] == [Status.STARTED] * 2
    assert [r.status for r in forced.results] == [Status.STARTED] * 2  # done before: not sent
    assert set(emulator.stats.copies_accepted) == {
        f"{MANAGEMENT}/eu-west-1/web-0-dr",
        f"{MANAGEMENT}/eu-west-1/web-1-dr",
    }


async def test_a_resume_of_a_manifest_naming_no_account_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest with no account column (the usual one-account run) records its account
    as well; a resume when STS cannot say whose the credentials are is refused too (it
    could be another account's), where the first run could not say, the resume goes on."""
    from batchcopy import load_manifest

    seed = fleet_seed([])
    seed["accounts"][MANAGEMENT]["regions"] = fleet_seed(CLIENTS[:1])["accounts"][CLIENTS[0]][
        "regions"
    ]
    # The copy stays in progress however long the test takes (a loaded machine took over
    # the emulator's one second): the last resume finds it started, not done.
    emulator = Emulator(seed=seed, faults=FaultConfig.from_json({"operation_seconds": 3600}))
    manifest = tmp_path / "m.csv"
    manifest.write_text(HEADER + "us-east-1,eu-west-1,web-0,,,,web-0-dr\n")
    folder, blind = tmp_path / "r", tmp_path / "blind"
    nowhere = f"http://127.0.0.1:{closed_port()}"
    async with running_emulator(emulator) as url:
        settings = settings_for(url, retry=RetryPolicy(max_attempts=2, base_delay=0.001))
        await copy_snapshots(load_manifest(manifest), settings, report_dir=folder)
        header = json.loads((folder / "journal.jsonl").read_text().splitlines()[0])
        assert header["base_account"] == MANAGEMENT
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", nowhere)
        with pytest.raises(ReportDirError, match="STS cannot say whose these credentials"):
            await copy_snapshots(load_manifest(manifest), settings, report_dir=folder, resume=True)
        # Where STS could not say at the first run, there is nothing to check against.
        await copy_snapshots(load_manifest(manifest), settings, report_dir=blind)
        header = json.loads((blind / "journal.jsonl").read_text().splitlines()[0])
        assert "base_account" not in header
        monkeypatch.delenv("AWS_ENDPOINT_URL_STS")
        again = await copy_snapshots(
            load_manifest(manifest), settings, report_dir=blind, resume=True
        )
    assert [r.status for r in again.results] == [Status.STARTED]
    assert emulator.stats.copies_accepted == {f"{MANAGEMENT}/eu-west-1/web-0-dr": 1}
