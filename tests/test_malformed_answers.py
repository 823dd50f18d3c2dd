"""Answers that are not what an operation promises (HTML, empty, {}, broken JSON) are never
taken for results: a copy is looked up, a listing is never "no snapshots"."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from batchcopy import RetryPolicy, Status, copy_snapshots
from batchcopy.discover import DiscoverOptions, discover
from batchcopy.doctor import run_checks
from batchcopy.emulator import Emulator, demo_seed, running_emulator
from batchcopy.errors import TransientError
from batchcopy.plan import make_plan
from tests.helpers import manual, settings_for
from tests.malicious import Answers, malicious_server

BODIES = {
    "html": "<html><body>Service Unavailable</body></html>",
    "empty": "",
    "empty object": "{}",
    "broken json": "{not json",
}
FEW_TRIES = RetryPolicy(base_delay=0.001, max_delay=0.01, deadline=30, max_attempts=3)


@pytest.mark.parametrize("body", list(BODIES))
async def test_a_copy_answered_with_garbage_is_looked_up_and_found(body: str) -> None:
    """The copy was made but its answer is garbage: the target is looked up and found, so
    the job is started (reconciled), and nothing is copied twice."""
    emulator = Emulator(seed=demo_seed())
    answers = Answers(bad={"CopySnapshot"}, body=BODIES[body], commit=True)
    async with running_emulator(emulator) as url, malicious_server(url, answers) as bad:
        report = await copy_snapshots([manual(1, "eu-west-1", "garbled")], settings_for(bad))
    (result,) = report.results
    assert (result.status, result.reconciled) == (Status.STARTED, True)
    assert emulator.stats.copies_accepted == {"eu-west-1/garbled": 1}


@pytest.mark.parametrize("body", list(BODIES))
async def test_a_copy_never_made_is_not_started_whatever_the_answer(body: str) -> None:
    """Garbage instead of an answer and no copy behind it: the job fails (exit 1), never
    started with exit 0, and a copy is never made twice."""
    emulator = Emulator(seed=demo_seed())
    answers = Answers(bad={"CopySnapshot"}, body=BODIES[body])
    async with running_emulator(emulator) as url, malicious_server(url, answers) as bad:
        report = await copy_snapshots(
            [manual(1, "eu-west-1", "never")], settings_for(bad, retry=FEW_TRIES)
        )
    (result,) = report.results
    assert result.status is Status.FAILED
    assert report.exit_code == 1
    assert answers.served["CopySnapshot"] == FEW_TRIES.max_attempts
    assert emulator.stats.copies_accepted == {}


@pytest.mark.parametrize("listing", ["GetInstanceSnapshots", "GetDiskSnapshots"])
@pytest.mark.parametrize("body", ["html", "empty object"])
async def test_a_listing_answered_with_garbage_is_not_no_snapshots(body: str, listing: str) -> None:
    """A region whose listing (of instance or of disk snapshots) is garbage fails its jobs
    without sending a copy (a garbage listing read as "nothing there" would skip the checks
    for targets that exist), and each failure says it was the region's listing and that
    this run sent no copy there."""
    emulator = Emulator(seed=demo_seed())
    answers = Answers(bad={listing}, body=BODIES[body])
    jobs = [manual(1, "eu-west-1", "nyc-web-1-dr"), manual(2, "eu-west-1", "fresh")]
    async with running_emulator(emulator) as url, malicious_server(url, answers) as bad:
        report = await copy_snapshots(jobs, settings_for(bad, retry=FEW_TRIES))
    assert {r.status for r in report.results} == {Status.FAILED}
    assert {r.error_code for r in report.results} == {"MalformedAnswer"}
    said = "listing the snapshots in eu-west-1 failed, so this run sent no copy there: "
    assert all(r.error_message.startswith(said) for r in report.results), report.results
    assert emulator.stats.copies_accepted == {}


async def test_a_lane_lists_instance_and_disk_snapshots_at_once() -> None:
    """A region's two listings go out together, so its first copy goes a round trip
    sooner: the instance listing is held until the disk listing has arrived (one sent only
    after the other's answer is answered as garbage), and the run still copies, having seen
    the target that already exists."""
    emulator = Emulator(seed=demo_seed())
    answers = Answers(after={"GetInstanceSnapshots": "GetDiskSnapshots"})
    jobs = [manual(1, "eu-west-1", "nyc-web-1-dr"), manual(2, "eu-west-1", "fresh")]
    async with running_emulator(emulator) as url, malicious_server(url, answers) as bad:
        report = await copy_snapshots(jobs, settings_for(bad, retry=FEW_TRIES))
    assert answers.served == {}  # never held past the other's arrival
    statuses = {r.job.target_snapshot_name: r.status for r in report.results}
    assert statuses == {"nyc-web-1-dr": Status.SKIPPED, "fresh": Status.STARTED}
    assert set(emulator.stats.copies_accepted) == {"eu-west-1/fresh"}


async def test_plan_and_doctor_say_a_garbage_answer_is_a_problem(tmp_path: Path) -> None:
    """plan lists a garbage look-up as a problem (no KeyError); doctor fails the region
    and the credentials check instead of saying OK."""
    emulator = Emulator(seed=demo_seed())
    answers = Answers(bad={"GetInstanceSnapshot", "GetInstanceSnapshots", "GetCallerIdentity"})
    async with running_emulator(emulator) as url, malicious_server(url, answers) as bad:
        settings = settings_for(bad, retry=FEW_TRIES)
        plan = await make_plan([manual(2, "eu-west-1", "planned")], settings)
        checks = await run_checks(settings, regions=["eu-west-1"], report_dir=tmp_path)
    assert [p.code for p in plan.problems] == ["RegionUnavailable"]
    assert "MalformedAnswer" in plan.problems[0].message
    failed = {c.name: c for c in checks if not c.ok}
    assert set(failed) == {"credentials", "lightsail eu-west-1"}, [str(c) for c in checks]
    assert "not as Lightsail does" in failed["lightsail eu-west-1"].detail


async def test_an_answer_trickling_a_byte_at_a_time_does_not_outlast_its_deadline() -> None:
    """A server that answers a byte every 0.2 s never trips a 0.5 s read timeout; each call
    still ends after connect + two reads' time, so the job fails in seconds, not minutes
    (the 2 KB answer would take 7 minutes), and no copy is made twice."""
    emulator = Emulator(seed=demo_seed())
    answers = Answers(bad={"CopySnapshot"}, body="{" + " " * 2048 + "}", trickle=0.2)
    async with running_emulator(emulator) as url, malicious_server(url, answers) as bad:
        settings = settings_for(bad, retry=FEW_TRIES, read_timeout=0.5, connect_timeout=0.5)
        with anyio.fail_after(60):  # a hang guard, not a timing: the answer alone takes 7 min
            report = await copy_snapshots([manual(1, "eu-west-1", "trickled")], settings)
    (result,) = report.results
    assert result.status is Status.FAILED
    assert answers.served["CopySnapshot"] == FEW_TRIES.max_attempts
    assert emulator.stats.copies_accepted == {}


# createdAt values botocore's timestamp parser cannot turn into a time (RuntimeError,
# OverflowError, ValueError inside botocore), in an answer otherwise as Lightsail's.
BAD_TIMES = ["1e300", "-1e300", "1e18", "Infinity", "NaN", '"yesterday"', '"9999-99-99"']


def _listing_with_created_at(value: str) -> str:
    snapshot = (
        '{"name": "nyc-web-1-2026-11-20", "state": "available", "resourceType": '
        f'"InstanceSnapshot", "createdAt": {value}, "fromInstanceName": "nyc-web-1"}}'
    )
    return f'{{"instanceSnapshots": [{snapshot}]}}'


@pytest.mark.parametrize("value", BAD_TIMES)
async def test_a_time_botocore_cannot_parse_is_a_malformed_answer_naming_the_field(
    value: str, tmp_path: Path
) -> None:
    """A listing whose createdAt is no time (1e300, NaN, a word) fails the run's jobs, the
    plan's region, doctor's region check and discover with "createdAt" named, never a
    traceback, and no copy is sent."""
    emulator = Emulator(seed=demo_seed())
    answers = Answers(bad={"GetInstanceSnapshots"}, body=_listing_with_created_at(value))
    async with running_emulator(emulator) as url, malicious_server(url, answers) as bad:
        settings = settings_for(bad, retry=FEW_TRIES)
        report = await copy_snapshots([manual(1, "eu-west-1", "timed")], settings)
        plan = await make_plan([manual(2, "eu-west-1", "planned")], settings)
        checks = await run_checks(settings, regions=["eu-west-1"], report_dir=tmp_path)
        with pytest.raises(TransientError) as found:
            await discover(
                DiscoverOptions(source_regions="us-east-1", target_regions="eu-west-1"), settings
            )
    (result,) = report.results
    assert (result.status, result.error_code) == (Status.FAILED, "MalformedAnswer")
    assert "createdAt" in result.error_message
    assert emulator.stats.copies_accepted == {}
    assert [p.code for p in plan.problems] == ["RegionUnavailable"]
    assert "createdAt" in plan.problems[0].message
    failed = {c.name: c for c in checks if not c.ok}
    assert set(failed) == {"lightsail eu-west-1"}, [str(c) for c in checks]
    assert "not as Lightsail does" in failed["lightsail eu-west-1"].detail
    assert found.value.code == "MalformedAnswer"
    assert "createdAt" in str(found.value)


async def test_a_message_with_half_a_surrogate_pair_is_reported_not_fatal(tmp_path: Path) -> None:
    """A refusal whose message escapes half a surrogate pair ("\\ud800", which no UTF-8 file
    can hold) fails its job with the message readable (U+FFFD in its place): every job has
    its row, the report and page are written, and nothing stops the run."""
    refusal = (400, {"__type": "InvalidInputException", "message": "lone \ud800 <b>x</b>"})
    jobs = [manual(i + 2, "eu-west-1", f"half-{i}") for i in range(3)]
    async with (
        running_emulator(Emulator(seed=demo_seed())) as url,
        malicious_server(url, Answers(refuse={"CopySnapshot": refusal})) as lying,
    ):
        few = RetryPolicy(base_delay=0.0, max_delay=0.0, deadline=30, max_attempts=1)
        report = await copy_snapshots(
            jobs, settings_for(lying, retry=few), report_dir=tmp_path / "r"
        )
    assert report.exit_code == 1
    rows = (tmp_path / "r" / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(jobs)
    assert all(r.status is Status.FAILED for r in report.results)
    assert all(r.error_message == "lone \ufffd <b>x</b>" for r in report.results)
    assert (tmp_path / "r" / "report.html").is_file()
