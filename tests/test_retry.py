"""Retry classification and policy: what is retried, how often, and until when."""

from __future__ import annotations

import socket

import aiohttp
import anyio
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from batchcopy.errors import (
    CredentialsError,
    PermanentError,
    SettingsError,
    ThrottledError,
    TransientError,
)
from batchcopy.lightsail import translate_error
from batchcopy.retry import RetryPolicy, guarded, is_retryable

URL = "http://127.0.0.1:1"


def client_error(code: str, status: int) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "CopySnapshot")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "kind", "ambiguous"),
    [
        (client_error("ThrottlingException", 400), ThrottledError, None),
        (client_error("TooManyRequestsException", 429), ThrottledError, None),
        (client_error("SomethingNew", 429), ThrottledError, None),
        (client_error("ServiceException", 500), TransientError, True),
        (client_error("InternalFailure", 503), TransientError, True),
        (client_error("InvalidInputException", 400), PermanentError, None),
        (client_error("NotFoundException", 400), PermanentError, None),
        (client_error("AccessDeniedException", 400), PermanentError, None),
        (client_error("UnauthenticatedException", 400), PermanentError, None),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), TransientError, True),
        (ConnectionClosedError(endpoint_url="http://127.0.0.1:1"), TransientError, True),
        # Could not connect at all: certainly never sent.
        (
            EndpointConnectionError(endpoint_url=URL, error=socket.gaierror("no name")),
            TransientError,
            False,
        ),
        (ConnectTimeoutError(endpoint_url=URL), TransientError, False),
        # aiobotocore reports a reset mid-request as an endpoint error too: it may have landed.
        (
            EndpointConnectionError(endpoint_url=URL, error=aiohttp.ClientConnectionError("reset")),
            TransientError,
            True,
        ),
        (ParamValidationError(report="bad"), PermanentError, None),
        (NoCredentialsError(), CredentialsError, None),
    ],
)
def test_aws_errors_are_classified(exc: Exception, kind: type, ambiguous: bool | None) -> None:
    """Throttles and transient faults are retryable; only faults after sending are ambiguous."""
    translated = translate_error(exc)
    assert isinstance(translated, kind)
    assert is_retryable(translated) == (kind in (ThrottledError, TransientError))
    if ambiguous is not None:
        assert isinstance(translated, TransientError)
        assert translated.ambiguous is ambiguous


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


async def run_with(
    policy: RetryPolicy, fake: FakeTime, errors: list[Exception], takes: float = 0.0
) -> int:
    """How many calls ``guarded`` made until one went through; each call takes ``takes``
    seconds and fails with the next of ``errors`` while there are any."""
    calls = 0

    async def call() -> int:
        nonlocal calls
        calls += 1
        fake.now += takes
        if errors:
            raise errors.pop(0)
        return calls

    return await guarded(call, policy, clock=fake.clock, sleep=fake.sleep)


async def test_throttles_are_retried_with_full_jitter_backoff() -> None:
    """Waits are random, never above the capped exponential, and the job gets through."""
    fake = FakeTime()
    policy = RetryPolicy(max_attempts=10, base_delay=1, max_delay=8)
    throttled = [ThrottledError("ThrottlingException", "slow down") for _ in range(6)]
    assert await run_with(policy, fake, throttled) == 7
    caps = [min(8, 1 * 2**n) for n in range(6)]
    assert all(0 <= s <= cap for s, cap in zip(fake.sleeps, caps, strict=True))


async def test_attempts_run_out_and_the_last_error_is_raised() -> None:
    """After max_attempts the last error itself is raised, not a wrapper."""
    fake = FakeTime()
    errors: list[Exception] = [TransientError("ServiceException", "x", ambiguous=True)] * 5
    left = list(errors)
    with pytest.raises(TransientError, match="ServiceException"):
        await run_with(RetryPolicy(max_attempts=3, base_delay=0), fake, left)
    assert len(left) == 2  # three calls made, the first one's failure counted too


async def test_deadline_stops_retries_that_would_end_too_late() -> None:
    """No retry is scheduled past the per-job deadline."""
    fake = FakeTime()
    policy = RetryPolicy(max_attempts=1000, base_delay=5, max_delay=5, deadline=30)
    errors: list[Exception] = [ThrottledError("Throttling", "x") for _ in range(1000)]
    with pytest.raises(ThrottledError):
        await run_with(policy, fake, errors)
    assert fake.now <= 30
    assert len(fake.sleeps) < 1000


async def test_the_deadline_counts_from_the_first_call() -> None:
    """The time the first call took counts against the deadline: a call that used it all
    up is not tried again."""
    fake = FakeTime()
    policy = RetryPolicy(max_attempts=10, base_delay=1, max_delay=1, deadline=30)
    errors: list[Exception] = [TransientError("ServiceException", "x", ambiguous=True)] * 3
    with pytest.raises(TransientError):
        await run_with(policy, fake, list(errors), takes=30)
    assert fake.sleeps == []
    fake = FakeTime()
    assert await run_with(policy, fake, list(errors), takes=1) == 4  # time left: retried
    assert len(fake.sleeps) == 3


async def test_permanent_errors_are_not_retried() -> None:
    """A permanent error fails at once."""
    fake = FakeTime()
    with pytest.raises(PermanentError):
        await run_with(RetryPolicy(), fake, [PermanentError("InvalidInputException", "bad")])
    assert fake.sleeps == []


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1}, {"base_delay": 5, "max_delay": 1}, {"deadline": 0}],
)
def test_policy_refuses_nonsense(kwargs: dict) -> None:
    """A policy that could never work is refused when it is made."""
    with pytest.raises(SettingsError):
        RetryPolicy(**kwargs)
