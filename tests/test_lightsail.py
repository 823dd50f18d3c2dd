"""The seam with Lightsail: what comes back from the service is translated and cleaned once."""

from __future__ import annotations

from botocore.exceptions import ClientError

from batchcopy.errors import PermanentError
from batchcopy.lightsail import translate_error
from batchcopy.provenance import SOURCE_TAG


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
