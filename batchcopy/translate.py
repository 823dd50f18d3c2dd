"""AWS errors translated once: every botocore error becomes a batchcopy error here.

:func:`translate_error` sorts an error into throttled, transient (``ambiguous`` when the
request may have taken effect) and permanent, or a credentials problem that ends the run.
:func:`malformed` is the error of an answer without what the operation promises, and
:func:`printable` cleans text from the service before it reaches a terminal or a log.
"""

from __future__ import annotations

import re
import socket

import aiohttp
from botocore import exceptions as boto
from botocore.parsers import ResponseParserError

from batchcopy.errors import CredentialsError, PermanentError, ThrottledError, TransientError

__all__ = [
    "CREDENTIAL_ERRORS",
    "MALFORMED_ANSWER",
    "PARSER_CHOKED",
    "malformed",
    "printable",
    "refused",
    "translate_error",
]

# botocore's own list of throttling codes (the standard retry mode uses it), plus a fallback
# in case a botocore release moves it.
THROTTLE_CODES: frozenset[str] = frozenset(
    getattr(
        __import__("botocore.retries.standard", fromlist=["x"]).ThrottledRetryableChecker,
        "_THROTTLED_ERROR_CODES",
        ("Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"),
    )
)
# Codes that mean "try again later" though they come with a 4xx status.
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "IDPCommunicationError",
    }
)
CREDENTIAL_ERRORS = (
    boto.NoCredentialsError,
    boto.PartialCredentialsError,
    boto.ProfileNotFound,
    boto.CredentialRetrievalError,
    boto.TokenRetrievalError,
    boto.SSOError,
    boto.NoRegionError,
)


def never_sent(exc: Exception) -> bool:
    """Whether the request certainly never reached the service: the connection itself
    failed. aiobotocore reports a connection reset mid-request as an endpoint error too,
    so only a failure to connect (or resolve the name) counts."""
    if isinstance(exc, boto.ConnectTimeoutError):
        return True
    if isinstance(exc, boto.EndpointConnectionError):
        cause = exc.kwargs.get("error")
        return isinstance(cause, aiohttp.ClientConnectorError | socket.gaierror)
    return False


def refused(exc: Exception) -> bool:
    """Whether the connection was refused: nothing listens at the endpoint's address."""
    if not isinstance(exc, boto.EndpointConnectionError):
        return False
    cause = exc.kwargs.get("error")
    return isinstance(cause, aiohttp.ClientConnectorError) and isinstance(
        cause.os_error, ConnectionRefusedError
    )


def translate_error(exc: Exception) -> Exception:
    """The batchcopy error for a botocore one; other exceptions come back unchanged."""
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        code = printable(str(error.get("Code") or "Unknown"))
        message = printable(str(error.get("Message") or ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if 300 <= (status or 0) < 400:
            # Never followed (sessions.NoRedirects): Lightsail and STS never redirect, so
            # whatever answered is not them, and nothing was done.
            return PermanentError(
                "Redirected",
                f"the endpoint answered with a redirect (HTTP {status}), which Lightsail never "
                "does; it was not followed: check --endpoint-url and any proxy",
                status=status,
            )
        if code in THROTTLE_CODES or status == 429:
            return ThrottledError(code, message, status=status)
        if (status or 0) >= 500 or code in TRANSIENT_CODES:
            return TransientError(code, message, status=status, ambiguous=True)
        return PermanentError(code, message, status=status)
    if isinstance(exc, CREDENTIAL_ERRORS):
        return CredentialsError(str(exc))
    if isinstance(exc, boto.ParamValidationError):
        return PermanentError("ParamValidationError", str(exc))
    if isinstance(exc, ResponseParserError):
        # An answer botocore cannot read at all (not XML where XML was due): whatever was
        # asked may or may not have been done.
        return TransientError(
            MALFORMED_ANSWER,
            f"the answer could not be read ({printable(str(exc))[:200]}); is --endpoint-url "
            "Lightsail's?",
            ambiguous=True,
        )
    if never_sent(exc):
        return TransientError(type(exc).__name__, str(exc), ambiguous=False)
    if isinstance(exc, boto.BotoCoreError | OSError | TimeoutError):
        # Read timeouts and connections closed mid-request: the request may have landed.
        return TransientError(type(exc).__name__, str(exc), ambiguous=True)
    return exc


MALFORMED_ANSWER = "MalformedAnswer"
# What botocore's parsers raise on an answer that is not the operation's at all (an HTML
# page where XML or JSON was due, a number no float holds): a malformed answer, not a bug of
# ours. Timestamps botocore cannot read never raise (lightsail.py gives it a parser that
# keeps them for the field's reader to refuse), so RuntimeError, which its timestamp parser
# raises and which is no proof of a bad answer elsewhere, is not among these.
PARSER_CHOKED = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A JSON answer may escape half of a surrogate pair alone ("\ud800"): a str no UTF-8 file
# can hold, so every report and journal line with it would fail to be written.
_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` from the service with control characters (ANSI escapes' ESC included) made
    spaces, as it may reach a terminal or a log line, and lone surrogates made U+FFFD, as
    it is written to UTF-8 files."""
    return _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", text))


def malformed(action: str, what: str, *, ambiguous: bool = False) -> TransientError:
    """An answer without what the operation promises (an HTML page, an empty body, another
    shape): never taken for a result. Retried like a fault; ``ambiguous`` for a write, whose
    outcome it leaves unknown."""
    return TransientError(
        MALFORMED_ANSWER,
        f"{action} answered without a valid {what}; is --endpoint-url Lightsail's?",
        ambiguous=ambiguous,
    )
