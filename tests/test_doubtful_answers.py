"""Answers that are wrong in subtler ways than garbage: an untagged copy, a listing that
never ends, a failed operation, evidence missing from a look-up, a redirect. Each is a job's
or a lane's failure with the field named, never a result taken on trust."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import anyio
import pytest

from batchcopy import (
    CopyJob,
    ManifestError,
    RetryPolicy,
    RunControl,
    Status,
    copy_snapshots,
    stream_copies,
)
from batchcopy.discover import DiscoverOptions, discover
from batchcopy.doctor import run_checks
from batchcopy.emulator import Emulator, demo_seed, running_emulator
from batchcopy.errors import LightsailError
from batchcopy.plan import make_plan
from tests.helpers import manual, settings_for
from tests.malicious import Answers, malicious_server

FEW_TRIES = RetryPolicy(base_delay=0.001, max_delay=0.01, deadline=30, max_attempts=3)
AUTO = CopyJob(
    line=2,
    source_region="us-east-1",
    target_region="eu-west-1",
    source_resource_name="nyc-web-1",
    restore_date="2026-11-19",
    target_snapshot_name="web-1-auto-copy",
)


@pytest.mark.parametrize("body", ["<html>Service Unavailable</html>", "{}"])
async def test_a_tag_answered_with_garbage_is_a_tag_error_not_a_tagged_copy(body: str) -> None:
    """TagResource answered without its operation is retried, then the row has tag_error
    and the run exits 1: the copy is never reported tagged when no label may be on it."""
    emulator = Emulator(seed=demo_seed())
    answers = Answers(bad={"TagResource"}, body=body)
    async with running_emulator(emulator) as url, malicious_server(url, answers) as bad:
        report = await copy_snapshots([AUTO], settings_for(bad, retry=FEW_TRIES))
    (result,) = report.results
    assert result.status is Status.STARTED
    assert "MalformedAnswer" in result.tag_error
    assert report.exit_code == 1
    assert answers.served["TagResource"] == FEW_TRIES.max_attempts


def _new_token_each_time(key: str) -> Any:
    """The first page again and again, under a new token each time."""
    tokens, first = itertools.count(), {}

    def rewrite(answer: Any) -> Any:
        if key in answer:  # the emulator knows no made-up token: it answers with an error
            first.setdefault("page", answer)
        return {**first["page"], "nextPageToken": f"page-{next(tokens)}"}

    return rewrite


async def test_a_listing_with_a_new_token_on_every_page_ends_with_the_region_named() -> None:
    """A listing whose every page repeats the same snapshots under a new token is stopped
    after a few pages: the region's jobs fail naming the region, nothing is copied."""
    emulator = Emulator(seed=demo_seed())
    answers = Answers(rewrite={"GetInstanceSnapshots": _new_token_each_time("instanceSnapshots")})
    async with running_emulator(emulator) as url, malicious_server(url, answers) as bad:
        with anyio.fail_after(60):  # a hang guard: the listing is endless
            report = await copy_snapshots([manual(2, "eu-west-1", "xx-copy")], settings_for(bad))
    (result,) = report.results
    assert result.status is Status.FAILED
    assert "eu-west-1" in result.error_message
    assert "never ends" in result.error_message
    assert answers.served["GetInstanceSnapshots"] <= 5
    assert emulator.stats.copies_accepted == {}


async def test_discover_stops_a_listing_that_never_ends() -> None:
    """discover's listing of instances with a new token on every page fails with the
    region named instead of running (and growing) for ever."""
    emulator = Emulator(seed=demo_seed())
    answers = Answers(rewrite={"GetInstances": _new_token_each_time("instances")})
    options = DiscoverOptions(
        source_regions=["us-east-1"], target_regions=["eu-west-1"], manual=False, auto="latest"
    )
    async with running_emulator(emulator) as url, malicious_server(url, answers) as bad:
        with anyio.fail_after(60), pytest.raises(LightsailError, match=r"us-east-1.*never ends"):
            await discover(options, settings_for(bad, retry=FEW_TRIES))
    assert answers.served["GetInstances"] <= 5


def _without(field: str, value: Any = None) -> Any:
    def rewrite(answer: Any) -> Any:
        found = dict(answer.get("instanceSnapshot") or {})
        if value is None:
            found.pop(field, None)
        else:
            found[field] = value
        return {**answer, "instanceSnapshot": found} if found else answer

    return rewrite


@pytest.mark.parametrize(
    ("field", "value"),
    [("createdAt", None), ("createdAt", 0), ("fromInstanceName", None)],
)
async def test_our_copy_without_its_evidence_is_cannot_tell_never_target_exists(
    field: str, value: Any
) -> None:
    """The copy's answer is lost and the look-up of our own target lacks its creation
    time or origin: the job fails naming the field and is not final (--resume looks
    again), never a final TargetExists that advises a duplicate under another name."""
    emulator = Emulator(seed=demo_seed())
    answers = Answers(
        drop={"CopySnapshot"}, rewrite={"GetInstanceSnapshot": _without(field, value)}
    )
    async with running_emulator(emulator) as url, malicious_server(url, answers) as bad:
        report = await copy_snapshots([AUTO], settings_for(bad, retry=FEW_TRIES))
    (result,) = report.results
    assert (result.status, result.error_code) == (Status.FAILED, "CannotTell")
    assert field in result.error_message
    assert result.outcome_unknown
    assert emulator.stats.copies_accepted == {"eu-west-1/web-1-auto-copy": 1}


async def test_a_copy_answered_with_a_failed_operation_is_failed_with_its_error_code() -> None:
    """CopySnapshot answered with an operation whose status is Failed is a failed job with
    that errorCode (exit 1), once the target is looked up and found absent."""
    emulator = Emulator(seed=demo_seed())
    failed = {"operations": [{"id": "op-1", "status": "Failed", "errorCode": "NoSuchSource"}]}
    answers = Answers(rewrite={"CopySnapshot": lambda _: failed})
    job = manual(2, "eu-west-1", "copy-of-nothing", source="no-such-snapshot")
    async with running_emulator(emulator) as url, malicious_server(url, answers) as bad:
        report = await copy_snapshots([job], settings_for(bad, retry=FEW_TRIES))
    (result,) = report.results
    assert (result.status, result.error_code) == (Status.FAILED, "NoSuchSource")
    assert not result.outcome_unknown
    assert report.exit_code == 1


async def test_a_request_cut_off_by_a_stop_is_counted_as_sent() -> None:
    """A copy request whose answer is still trickling in when the run is stopped shows
    the request in its row and in the summary, not 0 copy requests."""
    emulator = Emulator(seed=demo_seed())
    answers = Answers(bad={"CopySnapshot"}, body="{" + " " * 4096 + "}", trickle=0.05)
    control = RunControl(grace=0)
    async with running_emulator(emulator) as url, malicious_server(url, answers) as bad:
        settings = settings_for(bad, read_timeout=60, retry=FEW_TRIES)

        async def stop_once_sent() -> None:
            await answers.serving.wait()
            control.stop()

        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_once_sent)
            report = await copy_snapshots(
                [manual(2, "eu-west-1", "cut")], settings, control=control
            )
    (result,) = report.results
    assert (result.status, result.error_code) == (Status.FAILED, "Interrupted")
    assert result.attempts == 1
    assert report.summary.attempts == 1


@pytest.mark.parametrize("status", [302, 307])
async def test_a_redirect_is_never_followed(status: int) -> None:
    """An endpoint that redirects (to the emulator itself, here) is not followed: no copy
    request reaches the other host, and the jobs fail saying the endpoint redirected."""
    emulator = Emulator(seed=demo_seed())
    async with running_emulator(emulator) as url:
        answers = Answers(redirect=url, status=status)
        async with malicious_server(url, answers) as bad:
            report = await copy_snapshots([manual(2, "eu-west-1", "moved")], settings_for(bad))
    (result,) = report.results
    assert (result.status, result.error_code) == (Status.FAILED, "Redirected")
    assert emulator.stats.copies_accepted == {}
    # The listings, each once at most (the first to fail ends the other, which may not have
    # gone yet): a redirect is not retried.
    assert set(answers.served) <= {"GetInstanceSnapshots", "GetDiskSnapshots"}
    assert set(answers.served.values()) == {1}


async def test_the_async_api_refuses_jobs_that_share_a_target() -> None:
    """stream_copies refuses two jobs with one target before any request, as
    copy_snapshots and the manifest reader do."""
    jobs = [manual(2, "eu-west-1", "same"), manual(3, "eu-west-1", "same", source="other-1")]
    refused = stream_copies(jobs, settings_for("http://127.0.0.1:9"))
    with pytest.raises(ManifestError, match="already the target of line 2"):
        await refused.__aenter__()


async def test_discover_names_an_instance_without_a_name_or_a_tag_without_a_key() -> None:
    """An instance listed without a name, or with a tag without a key, fails discover with
    the field named (no KeyError traceback)."""
    options = DiscoverOptions(
        source_regions=["us-east-1"], target_regions=["eu-west-1"], manual=False, auto="latest"
    )
    nameless = {"name": None}  # the key is dropped below
    for broken, field in ((nameless, "name"), ({"tags": [{"value": "x"}]}, "tags[].key")):

        def rewrite(answer: Any, broken: dict[str, Any] = broken) -> Any:
            instances = [{**i, **broken} for i in answer["instances"]]
            return {**answer, "instances": [{k: v for k, v in i.items() if v} for i in instances]}

        answers = Answers(rewrite={"GetInstances": rewrite})
        async with (
            running_emulator(Emulator(seed=demo_seed())) as url,
            malicious_server(url, answers) as bad,
        ):
            with pytest.raises(LightsailError, match=field.replace("[", r"\[")):
                await discover(options, settings_for(bad, retry=FEW_TRIES))


@pytest.mark.parametrize("body", ["Service Unavailable", "", "<Get><Arn>\x1b[2Jx</Arn>"])
async def test_doctor_fails_credentials_on_an_sts_answer_that_is_not_xml(
    body: str, tmp_path: Path
) -> None:
    """doctor with STS answering something that is not XML fails its credentials check
    with a readable line (no ResponseParserError traceback, no escapes passed on)."""
    answers = Answers(bad={"GetCallerIdentity"}, body=body)
    async with (
        running_emulator(Emulator(seed=demo_seed())) as url,
        malicious_server(url, answers) as bad,
    ):
        settings = settings_for(bad, retry=FEW_TRIES)
        checks = await run_checks(settings, regions=["eu-west-1"], report_dir=tmp_path)
    failed = {c.name: c for c in checks if not c.ok}
    assert "credentials" in failed
    assert "\x1b" not in failed["credentials"].detail


async def test_plan_refuses_a_negative_size_and_discover_a_date_that_is_not_one() -> None:
    """A snapshot listed with sizeInGb -5 is a problem plan names (never "-5 GB"), and an
    automatic snapshot dated 9999-99-99 fails discover (never a manifest row with it)."""

    def negative(answer: Any) -> Any:
        found = answer.get("instanceSnapshot") or {}
        return {**answer, "instanceSnapshot": {**found, "sizeInGb": -5}} if found else answer

    def undated(answer: Any) -> Any:
        autos = [{**a, "date": "9999-99-99"} for a in answer.get("autoSnapshots", [])]
        return {**answer, "autoSnapshots": autos}

    answers = Answers(rewrite={"GetInstanceSnapshot": negative, "GetAutoSnapshots": undated})
    options = DiscoverOptions(
        source_regions=["us-east-1"], target_regions=["eu-west-1"], manual=False, auto="latest"
    )
    async with (
        running_emulator(Emulator(seed=demo_seed())) as url,
        malicious_server(url, answers) as bad,
    ):
        settings = settings_for(bad, retry=FEW_TRIES)
        plan = await make_plan([manual(2, "eu-west-1", "planned")], settings)
        with pytest.raises(LightsailError, match="autoSnapshots"):
            await discover(options, settings)
    assert any("sizeInGb" in p.message for p in plan.problems), plan.problems
