"""batchcopy's exceptions, one tree::

BatchcopyError
├── ManifestError          the manifest breaks a rule; carries every problem found
├── SettingsError          an option or setting is out of range
├── ReportDirError         the report folder cannot be used
├── StorageError           writing the journal or report failed mid-run (a full disk):
│                          the run stops sending; the journal holds what was done
├── CredentialsError       no usable AWS credentials or configuration; ends the run
│   └── EndpointUnreachableError  the endpoint refused the connection before it ever
│                          answered (a wrong --endpoint-url); ends the run
└── LightsailError         a Lightsail call failed (translated once, in lightsail.py)
    ├── ThrottledError     the service asked us to slow down; retried
    ├── TransientError     5xx, dropped connection, timeout; retried. ``ambiguous``
    │                      when the request may have taken effect anyway
    └── PermanentError     retrying cannot help: InvalidInput, NotFound, AccessDenied...
        └── OperationFailedError  Lightsail answered a write with an operation that had
                           failed (its errorCode is the code); what it left is looked up
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

E = TypeVar("E", bound=BaseException)

__all__ = [
    "BatchcopyError",
    "CredentialsError",
    "EndpointUnreachableError",
    "LightsailError",
    "ManifestError",
    "OperationFailedError",
    "PermanentError",
    "Problem",
    "ReportDirError",
    "SettingsError",
    "StorageError",
    "ThrottledError",
    "TransientError",
    "ungrouped",
    "unwrap",
]


class BatchcopyError(Exception):
    """The root of every error batchcopy raises on purpose."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing wrong in a manifest, where it is, and what to do about it."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ManifestError(BatchcopyError):
    """The manifest cannot be run; ``problems`` lists everything found (up to a cap)."""

    def __init__(self, problems: list[Problem], *, more: int = 0) -> None:
        self.problems = problems
        self.more = more
        lines = [str(p) for p in problems]
        if more:
            lines.append(f"... and {more} more problem{'s' if more > 1 else ''}")
        super().__init__("\n".join(lines))


class StorageError(BatchcopyError):
    """The journal or the report could not be written during a run (a full disk, a quota,
    a failing device): nothing more is sent, since no intent could be recorded first."""

    def __init__(self, path: object, exc: OSError) -> None:
        super().__init__(
            f"cannot write {path} ({exc.strerror or exc}); nothing more was sent. Free "
            "space, then --resume the report folder: its journal holds what was done"
        )


class SettingsError(BatchcopyError):
    """A setting is out of range; the message names it.

    ``field`` is the setting's name as the API spells it (``max_attempts``) and ``rule``
    what is wrong with it; the message is the two together, so the CLI can put the option
    the user typed (``--max-attempts``) in the field's place. Errors about no one setting
    leave ``field`` empty and ``rule`` the whole message."""

    def __init__(self, rule: str, *, field: str = "") -> None:
        super().__init__(f"{field} {rule}" if field else rule)
        self.field = field
        self.rule = rule


class ReportDirError(BatchcopyError):
    """The report folder cannot be created or written."""


class CredentialsError(BatchcopyError):
    """AWS credentials or configuration cannot be used (no keys, unknown profile, SSO expired).

    It ends a run; ``exit_code`` is what the run reports and exits with, as the AWS CLI does."""

    exit_code = 253


class EndpointUnreachableError(CredentialsError):
    """The endpoint refused the connection and has never answered: the configuration
    (``--endpoint-url``, a proxy, the network) points nowhere, so retrying cannot help.

    A refusal from an endpoint that did answer earlier is a passing fault instead
    (a :class:`TransientError`, retried)."""

    def __init__(self, endpoint: str, *, check: str = "--endpoint-url") -> None:
        """``check``: the settings that chose ``endpoint``, for the message."""
        super().__init__(f"cannot connect to {endpoint} (connection refused); check {check}")
        self.endpoint = endpoint


class LightsailError(BatchcopyError):
    """A Lightsail call failed. ``code`` is the AWS error code (or a transport error's name)."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status


class ThrottledError(LightsailError):
    """The service throttled the call; nothing happened, so retrying is safe."""


class TransientError(LightsailError):
    """A fault worth retrying. ``ambiguous``: the request may have taken effect anyway."""

    def __init__(
        self, code: str, message: str, *, status: int | None = None, ambiguous: bool
    ) -> None:
        super().__init__(code, message, status=status)
        self.ambiguous = ambiguous


class PermanentError(LightsailError):
    """Retrying cannot help: the input, the permissions or the resource is wrong."""


class OperationFailedError(PermanentError):
    """Lightsail answered a write with an operation whose status is Failed; ``code`` is
    its errorCode. Something may still have been left behind (a target in state error)."""


def unwrap(group: BaseExceptionGroup[BaseException], kind: type[E]) -> E | None:
    """The first of a task group's errors if every one of them is a ``kind``, else None.
    With ``kind`` BaseException: the error if the group holds exactly one.

    Task groups wrap what their tasks raise; an expected error (no credentials, say) should
    still reach the user as itself, while anything else keeps its group intact.
    """
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            pending[:0] = exc.exceptions
        else:
            leaves.append(exc)
    if len(leaves) == 1 and kind is BaseException:
        return leaves[0]  # type: ignore[return-value]
    if leaves and all(isinstance(leaf, kind) for leaf in leaves):
        first: E = leaves[0]  # type: ignore[assignment]
        return first
    return None


@contextlib.contextmanager
def ungrouped() -> Iterator[None]:
    """Around a task group: an error of batchcopy's that ends it (a Lightsail or
    credentials error, say) comes out as itself, not in a group; anything else keeps its
    group."""
    try:
        yield
    except BaseExceptionGroup as group:
        if (error := unwrap(group, BatchcopyError)) is None:
            raise
        raise error from None
