"""The seam with Lightsail: what comes back from the service is translated and cleaned once."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from batchcopy.emulator import Emulator, FaultConfig, running_emulator
from batchcopy.errors import OperationFailedError, PermanentError, TransientError
from batchcopy.lightsail import MALFORMED_ANSWER, LightsailClients, translate_error
from batchcopy.provenance import SOURCE_TAG
from tests.conftest import SMALL_SEED
from tests.helpers import settings_for
from tests.malicious import Answers, malicious_server


def test_text_from_the_service_carries_no_terminal_escapes() -> None:
    """An error's code and message from the service lose control characters and ANSI
    escapes before they can reach a log line or a terminal."""
    answer = {
        "Error": {"Code": "Invalid\x1b]0;pwned\x07Input", "Message": "\x1b[31mred\nforged line"},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    error = translate_error(ClientError(answer, "CopySnapshot"))
    assert isinstance(error, PermanentError)
    for text in (error.code, error.message):
        assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text), repr(text)
    assert "forged line" in error.message


def test_listed_snapshots_carry_no_terminal_escapes() -> None:
    """Names of origins, states and tags listed by the service are cleaned the same way."""
    from batchcopy.lightsail import _snapshot_info

    item = {
        "name": "snap-1",
        "fromInstanceName": "web\x1b[2J-1",
        "state": "available\r",
        "tags": [{"key": SOURCE_TAG, "value": "us-east-1/a\x1b[0m\nb"}],
    }
    info = _snapshot_info("eu-west-1", "instance", item)
    texts = [info.origin, info.state, *(v for _, v in info.tags)]
    assert all(not any(ord(c) < 32 for c in text) for text in texts), texts


# -- deletes ---------------------------------------------------------------------------------


def _left(emulator: Emulator, region: str = "us-east-1") -> set[str]:
    return set(emulator.sim.regions[region].snapshots)


async def test_a_delete_returns_its_operation_and_the_snapshot_is_gone() -> None:
    """delete_snapshot deletes an instance or a disk snapshot by kind and returns the
    operation's id; each delete is sent once."""
    emulator = Emulator(seed=SMALL_SEED)
    async with running_emulator(emulator) as url, LightsailClients(settings_for(url)) as api:
        for name, kind in (("web-1-snap", "instance"), ("data-1-snap", "disk")):
            operation = await api.delete_snapshot("us-east-1", name, kind)
            assert operation
            assert (await api.get_operation("us-east-1", operation))["status"] == "Succeeded"
    assert _left(emulator) == set()
    assert emulator.stats.deletes_accepted == {
        "us-east-1/web-1-snap": 1,
        "us-east-1/data-1-snap": 1,
    }


async def test_a_snapshot_already_gone_is_none_not_a_failure() -> None:
    """Deleting a snapshot that is not there (or is of the other kind) returns None: a
    delete's goal is reached, nothing is deleted."""
    emulator = Emulator(seed=SMALL_SEED)
    async with running_emulator(emulator) as url, LightsailClients(settings_for(url)) as api:
        assert await api.delete_snapshot("us-east-1", "never-was", "instance") is None
        assert await api.delete_snapshot("us-east-1", "web-1-snap", "disk") is None
    assert _left(emulator) == {"web-1-snap", "data-1-snap"}
    assert not emulator.stats.deletes_accepted


async def test_a_delete_of_an_unknown_kind_is_refused_before_any_request() -> None:
    """A kind other than "instance" or "disk" is a ValueError; nothing is sent."""
    emulator = Emulator(seed=SMALL_SEED)
    async with running_emulator(emulator) as url, LightsailClients(settings_for(url)) as api:
        with pytest.raises(ValueError, match=r"instance.*disk"):
            await api.delete_snapshot("us-east-1", "web-1-snap", "database")
    assert not emulator.stats.requests


async def test_a_lost_answer_to_a_delete_is_ambiguous_and_the_snapshot_is_gone() -> None:
    """A delete whose answer is lost after the emulator deleted raises an ambiguous
    TransientError: the caller must look the snapshot up, and finds it gone."""
    faults = FaultConfig.from_json({"drop_after_rate": 1, "actions": ["DeleteInstanceSnapshot"]})
    emulator = Emulator(seed=SMALL_SEED, faults=faults)
    async with running_emulator(emulator) as url, LightsailClients(settings_for(url)) as api:
        with pytest.raises(TransientError) as caught:
            await api.delete_snapshot("us-east-1", "web-1-snap", "instance")
        assert caught.value.ambiguous
        assert await api.find_snapshot("us-east-1", "web-1-snap") is None
    assert emulator.stats.deletes_accepted == {"us-east-1/web-1-snap": 1}


async def test_the_source_of_a_running_copy_is_not_deleted() -> None:
    """Deleting the source of a copy still running is refused: a PermanentError with
    InvalidInputException, and the source stays."""
    emulator = Emulator(seed=SMALL_SEED)
    copy = {
        "sourceRegion": "us-east-1",
        "sourceSnapshotName": "web-1-snap",
        "targetSnapshotName": "web-1-dr",
    }
    emulator.sim.op_copy_snapshot("eu-west-1", copy, seconds=3600)
    async with running_emulator(emulator) as url, LightsailClients(settings_for(url)) as api:
        with pytest.raises(PermanentError) as caught:
            await api.delete_snapshot("us-east-1", "web-1-snap", "instance")
    assert caught.value.code == "InvalidInputException"
    assert "web-1-snap" in _left(emulator)
    assert not emulator.stats.deletes_accepted


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda answer: {},
        lambda answer: {"operations": []},
        lambda answer: {"operations": [{"status": "Succeeded"}]},
        lambda answer: {"operations": "done"},
    ],
    ids=["empty", "no-operations", "no-id", "not-a-list"],
)
async def test_a_delete_answered_without_its_operation_is_ambiguous(rewrite: Any) -> None:
    """An answer to a delete without an operation id leaves the outcome unknown: an
    ambiguous malformed-answer error, never taken for a delete done or not done."""
    emulator = Emulator(seed=SMALL_SEED)
    answers = Answers(rewrite={"DeleteDiskSnapshot": rewrite})
    async with (
        running_emulator(emulator) as url,
        malicious_server(url, answers) as bad,
        LightsailClients(settings_for(bad)) as api,
    ):
        with pytest.raises(TransientError) as caught:
            await api.delete_snapshot("us-east-1", "data-1-snap", "disk")
    assert caught.value.code == MALFORMED_ANSWER
    assert caught.value.ambiguous
    assert answers.served == {"DeleteDiskSnapshot": 1}


async def test_a_delete_answered_with_a_failed_operation_fails() -> None:
    """A delete answered with a Failed operation raises OperationFailedError with its
    errorCode: the snapshot was not deleted, and is not reported as deleted."""

    def failed(answer: Any) -> Any:
        operation = answer["operations"][0]
        return {"operations": [{**operation, "status": "Failed", "errorCode": "Busy"}]}

    emulator = Emulator(seed=SMALL_SEED)
    answers = Answers(rewrite={"DeleteInstanceSnapshot": failed})
    async with (
        running_emulator(emulator) as url,
        malicious_server(url, answers) as bad,
        LightsailClients(settings_for(bad)) as api,
    ):
        with pytest.raises(OperationFailedError) as caught:
            await api.delete_snapshot("us-east-1", "web-1-snap", "instance")
    assert caught.value.code == "Busy"
