"""The engine end to end: real aiobotocore clients against the emulator on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batchcopy import (
    RegionCounters,
    RunControl,
    Status,
    copy_snapshots,
    load_manifest,
    stream_copies,
)
from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator
from batchcopy.errors import (
    CredentialsError,
    EndpointUnreachableError,
    ManifestError,
    TransientError,
)
from batchcopy.lightsail import LightsailClients
from batchcopy.settings import OnExists
from tests.helpers import (
    assert_each_target_copied_once,
    closed_port,
    manual,
    mixed_jobs,
    run,
    settings_for,
)


async def test_manual_and_automatic_copies_into_three_regions() -> None:
    """Every job starts; each target exists in its region with the right kind and origin."""
    jobs = mixed_jobs()
    report, emulator = await run({}, jobs)
    assert [r.status for r in report.results].count(Status.STARTED) == len(jobs)
    assert report.exit_code == 0
    assert report.summary.counts["started"] == len(jobs)
    assert set(report.summary.by_region) == {"eu-west-1", "ap-south-1", "us-west-2"}
    for job in jobs:
        snap = emulator.sim.regions[job.target_region].snapshots[job.target_snapshot_name]
        expected = (
            "DiskSnapshot" if job.target_snapshot_name.startswith("disk") else "InstanceSnapshot"
        )
        assert snap.kind == expected
    assert all(r.operation_id for r in report.results)
    assert len(emulator.stats.copies_accepted) == len(jobs)
    assert_each_target_copied_once(report, emulator)


async def test_permanent_errors_fail_at_once_with_their_code() -> None:
    """A missing source fails with NotFoundException after one request; others go on."""
    jobs = [
        manual(2, "eu-west-1", "good"),
        manual(3, "eu-west-1", "bad", source="no-such-snapshot"),
    ]
    report, _ = await run({}, jobs)
    by_name = {r.job.target_snapshot_name: r for r in report.results}
    assert by_name["good"].status is Status.STARTED
    bad = by_name["bad"]
    assert (bad.status, bad.error_code, bad.attempts) == (Status.FAILED, "NotFoundException", 1)
    assert "no-such-snapshot" in bad.error_message
    assert report.exit_code == 1


async def test_existing_targets_are_skipped_or_failed() -> None:
    """A target already there from the same source is skipped (or failed on request); one
    from another source is a conflict. Existing targets cost no CopySnapshot call."""
    jobs = [
        manual(2, "eu-west-1", "nyc-web-1-dr"),  # in the demo data, copied from this source
        manual(3, "eu-west-1", "nyc-web-1-dr-2", source="nyc-api-1-2026-11-20"),
    ]
    seed = demo_seed()
    seed["regions"]["eu-west-1"]["instanceSnapshots"].append(
        {"name": "nyc-web-1-dr-2", "fromInstanceName": "nyc-web-1", "sizeInGb": 40}
    )
    for mode, first in ((OnExists.SKIP, Status.SKIPPED), (OnExists.FAIL, Status.FAILED)):
        emulator = Emulator(seed=seed)
        async with running_emulator(emulator) as url:
            report = await copy_snapshots(jobs, settings_for(url, on_exists=mode))
        by_name = {r.job.target_snapshot_name: r for r in report.results}
        assert by_name["nyc-web-1-dr"].status is first
        conflict = by_name["nyc-web-1-dr-2"]
        assert (conflict.status, conflict.error_code) == (Status.FAILED, "TargetExists")
        assert "choose another target name" in conflict.error_message
        assert emulator.stats.requests["eu-west-1", "CopySnapshot", "ok"] == 0
        listed = emulator.stats.requests["eu-west-1", "GetInstanceSnapshots", "ok"]
        assert listed == 1  # one listing per region, not a call per job


async def test_in_flight_cap_holds_per_region() -> None:
    """No more copies are open at once in a region than --max-in-flight allows."""
    jobs = [manual(i, "eu-west-1", f"cap-{i}") for i in range(30)]
    report, emulator = await run({"latency_ms": 20}, jobs, max_in_flight=3)
    assert all(r.status is Status.STARTED for r in report.results)
    assert emulator.stats.peak_in_flight["eu-west-1"] <= 3 + 1  # + the region's listing


async def test_in_flight_grows_with_the_rate() -> None:
    """Started at a low rate over a slow link, a region keeps more and more copies open as
    its rate grows, beyond what the start needed, without tuning --max-in-flight (which
    stays the ceiling)."""
    jobs = [manual(i, "eu-west-1", f"fast-{i}") for i in range(400)]
    faults = {"latency_ms": 100}
    report, emulator = await run(faults, jobs, rate=10, burst=1, max_in_flight=128)
    assert all(r.status is Status.STARTED for r in report.results)
    # At the start 16 were allowed (the floor); hundreds of requests/s of 100 ms need more.
    assert emulator.stats.peak_in_flight["eu-west-1"] >= 30
    report, emulator = await run(faults, jobs, rate=10, burst=1, max_in_flight=12)
    assert emulator.stats.peak_in_flight["eu-west-1"] <= 12 + 1  # + the region's listing


async def test_stream_yields_each_result_as_it_finishes() -> None:
    """The async iterator API yields one result per job."""
    jobs = mixed_jobs(9)
    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url, stream_copies(jobs, settings_for(url)) as results:
        seen = [result async for result in results]
    assert sorted(r.job.line for r in seen) == sorted(j.line for j in jobs)


async def test_target_made_after_the_listing_is_judged_like_an_existing_one() -> None:
    """A target another run creates after our listing is skipped (same source), not failed."""
    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url:
        original = emulator.sim.op_get_instance_snapshots

        def list_then_race(region: str, params: dict[str, Any]) -> dict[str, Any]:
            body = original(region, params)
            if region == "eu-west-1" and "raced" not in emulator.sim.regions[region].snapshots:
                # An overlapping run copies the same source right after our listing.
                emulator.sim.op_copy_snapshot(
                    region,
                    {
                        "sourceRegion": "us-east-1",
                        "sourceSnapshotName": "nyc-web-1-2026-11-20",
                        "targetSnapshotName": "raced",
                    },
                )
            return body

        emulator.sim.op_get_instance_snapshots = list_then_race  # type: ignore[method-assign]
        report = await copy_snapshots([manual(1, "eu-west-1", "raced")], settings_for(url))
    (result,) = report.results
    assert (result.status, result.attempts, result.reconciled) == (Status.SKIPPED, 1, False)


async def test_target_left_in_error_state_fails_instead_of_skipping() -> None:
    """A target that exists in error state (a failed copy) is reported failed, not skipped."""
    seed = demo_seed()
    seed["regions"]["eu-west-1"]["instanceSnapshots"].append(
        {"name": "broken", "fromInstanceName": "nyc-web-1", "sizeInGb": 40, "state": "error"}
    )
    emulator = Emulator(seed=seed)
    async with running_emulator(emulator) as url:
        report = await copy_snapshots([manual(1, "eu-west-1", "broken")], settings_for(url))
    (result,) = report.results
    assert (result.status, result.error_code) == (Status.FAILED, "TargetFailed")
    assert "delete it" in result.error_message


async def test_callers_own_error_comes_out_as_itself() -> None:
    """An exception raised by the caller's on_result is not wrapped in an exception group."""

    def explode(result: Any) -> None:
        raise KeyError("mine")

    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url:
        with pytest.raises(KeyError, match="mine"):
            await copy_snapshots(
                [manual(1, "eu-west-1", "k1")], settings_for(url), on_result=explode
            )


async def test_run_control_counts_requests_acceptances_and_throttles_per_region() -> None:
    """control.counters counts each region's CopySnapshot requests, accepted copies and
    throttles; at the end they agree with the report, and nothing is left copying."""
    control = RunControl()
    faults = {"regions": {"eu-west-1": {"copy_rate": 20, "copy_burst": 1}}}
    jobs = [manual(i + 2, "eu-west-1", f"t-{i}") for i in range(8)]
    jobs.append(manual(10, "ap-south-1", "bad", source="no-such-snapshot"))
    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(faults))
    assert control.counters == {}
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(jobs, settings_for(url, rate=200), control=control)
    counters = control.counters
    assert counters["ap-south-1"] == RegionCounters(sent=1)
    ireland = counters["eu-west-1"]
    assert ireland.throttled > 0
    assert (ireland.accepted, ireland.copying) == (8, 0)
    assert ireland.sent == ireland.accepted + ireland.throttled
    assert sum(c.sent for c in counters.values()) == report.summary.attempts
    assert sum(c.throttled for c in counters.values()) == report.summary.throttles


class _ExpiringCredentials:
    """Real Lightsail clients whose credentials stop working after the first copy."""

    def __init__(self, api: Any) -> None:
        self._api = api
        self.copies = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    async def account(self, account: str) -> Any:
        return self  # one account: this wrapper's

    async def copy_snapshot(self, job: Any) -> str:
        if self.copies:
            raise CredentialsError("the session token has expired")
        self.copies += 1
        return str(await self._api.copy_snapshot(job))


async def test_credentials_failing_mid_run_report_exit_253(tmp_path: Path) -> None:
    """Credentials that stop working after copies were sent: the run ends with the error and
    its summary.json says 253, the exit code the CLI gives that error."""
    emulator = Emulator(seed=demo_seed())
    control = RunControl()
    jobs = [manual(line, "eu-west-1", f"expiring-{line}") for line in (1, 2, 3)]
    async with running_emulator(emulator) as url:
        settings = settings_for(url, max_in_flight=1, burst=1)
        async with LightsailClients(settings) as real:
            with pytest.raises(CredentialsError):
                await copy_snapshots(
                    jobs,
                    settings,
                    report_dir=tmp_path / "r",
                    control=control,
                    api=_ExpiringCredentials(real),
                )
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["exit_code"] == 253 == CredentialsError.exit_code
    assert summary["counts"]["started"] == 1
    assert control.report is not None
    assert control.report.exit_code == 253


async def test_closed_port_ends_the_run_before_a_report_folder(tmp_path: Path) -> None:
    """An endpoint that refuses the connection raises EndpointUnreachableError at once and
    leaves no report folder: nothing was sent."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(EndpointUnreachableError, match=endpoint):
        await copy_snapshots(
            [manual(1, "eu-west-1", "nowhere")],
            settings_for(endpoint),
            report_dir=tmp_path / "r",
        )
    assert not (tmp_path / "r").exists()


async def test_refusal_after_an_answer_is_a_passing_fault() -> None:
    """A refused connection from an endpoint that has answered before (it restarted) is a
    transient fault, retried, not the end of the run; one that never answered is fatal."""
    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url:
        api = LightsailClients(settings_for(url))
        await api.__aenter__()
        await api.probe("eu-west-1")
    try:
        with pytest.raises(TransientError):
            await api.probe("eu-west-1")  # the kept-alive connection is gone: ambiguous
        with pytest.raises(TransientError) as caught:
            await api.probe("eu-west-1")  # a new connection, refused: nothing listens at url
        assert not caught.value.ambiguous
        assert not isinstance(caught.value, CredentialsError)
        async with LightsailClients(settings_for(url)) as fresh:
            with pytest.raises(EndpointUnreachableError):
                await fresh.probe("eu-west-1")
    finally:
        await api.__aexit__(None, None, None)


async def test_jobs_given_in_code_with_one_target_twice_are_refused() -> None:
    """copy_snapshots refuses two jobs for one target as a manifest would: ManifestError
    naming the line, before any request."""
    emulator = Emulator(seed=demo_seed())
    jobs = [manual(2, "eu-west-1", "twice"), manual(3, "eu-west-1", "twice")]
    async with running_emulator(emulator) as url:
        with pytest.raises(ManifestError, match="already the target of line 2"):
            await copy_snapshots(jobs, settings_for(url))
    assert sum(emulator.stats.requests.values()) == 0


async def test_rows_added_to_a_checked_manifest_are_never_copied(tmp_path: Path) -> None:
    """Rows appended to the manifest after it was checked (as a run starts reading it) are
    never copied: the run copies the rows checked, and its report lists only those."""
    path = tmp_path / "m.csv"
    path.write_text(
        "source_region,target_region,source_snapshot_name,target_snapshot_name\n"
        "us-east-1,eu-west-1,nyc-web-1-2026-11-20,checked-1\n"
    )
    manifest = load_manifest(path)
    with path.open("a") as handle:
        handle.writelines(f"us-east-1,eu-west-1,nyc-web-1-2026-11-20,added-{i}\n" for i in range(5))
    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url:
        report = await copy_snapshots(manifest, settings_for(url))
    assert [r.job.target_snapshot_name for r in report.results] == ["checked-1"]
    assert report.exit_code == 0
    assert not [t for t in emulator.stats.copies_accepted if "added-" in t]
