"""STS in the emulator: AssumeRole issues session keys tied to an account; GetCallerIdentity.

STS speaks the query protocol: a form-encoded POST, answered in XML. A key the emulator
issued belongs to the account whose role was assumed and expires after ``DurationSeconds``
(or when the control API expires every key issued so far); Lightsail calls signed with it
then answer ``ExpiredTokenException``, as the real service does. A key it did not issue is
the caller's: the seed's ``caller`` account.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

from batchcopy.emulator.accounts import Account
from batchcopy.emulator.sim import ApiError

__all__ = ["ISSUED_PREFIX", "Keys", "Session", "assume_role", "caller_identity", "xml_error"]

ISSUED_PREFIX = "ASIAEMU"  # every key AssumeRole hands out starts so
_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
_ROLE_ARN = re.compile(
    r"arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})", re.ASCII
)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_DURATION = (900, 43_200)


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """What an issued key stands for."""

    account: str
    role: str
    name: str
    expires_at: float


class Keys:
    """The session keys AssumeRole issued, by access key id."""

    def __init__(self, clock: Callable[[], float], *, issued: int = 0) -> None:
        """``issued``: keys handed out before (by the keys this replaces): numbered on from
        there, a key from before a reset is unknown, never another session's."""
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._expired_before = 0  # keys issued before this count are expired by the control API
        self._issued = issued

    def __repr__(self) -> str:
        return f"<Keys issued={len(self._sessions)}>"

    @property
    def issued(self) -> int:
        """How many keys have been handed out, these and those before."""
        return self._issued

    def issue(self, session: Session) -> str:
        """A new access key id for ``session``."""
        self._issued += 1
        key = f"{ISSUED_PREFIX}{self._issued:013d}"
        self._sessions[key] = session
        return key

    def expire_all(self) -> int:
        """Expire every key issued so far; returns how many there were."""
        self._expired_before = self._issued + 1
        return len(self._sessions)

    def session(self, key: str) -> Session | None:
        """The session of an issued key (None for keys the emulator did not issue);
        ApiError for one that expired or that it does not know."""
        if not key.startswith(ISSUED_PREFIX):
            return None
        session = self._sessions.get(key)
        if session is None:
            raise ApiError(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
                403,
            )
        number = int(key[len(ISSUED_PREFIX) :])
        if number < self._expired_before or self._clock() >= session.expires_at:
            raise ApiError(
                "ExpiredTokenException", "The security token included in the request is expired"
            )
        return session


def assume_role(
    form: Mapping[str, str],
    *,
    accounts: Mapping[str, Account],
    caller_arn: str,
    keys: Keys,
    now: float,
) -> str:
    """Answer an AssumeRole request: the XML body, or ApiError as STS refuses it."""
    arn, name = form.get("RoleArn", ""), form.get("RoleSessionName", "")
    match = _ROLE_ARN.fullmatch(arn)
    if match is None:
        raise _validation(f"RoleArn {arn!r} is not a role ARN")
    if not _SESSION_NAME.fullmatch(name):
        raise _validation(
            f"Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must "
            r"satisfy regular expression pattern: [\w+=,.@-]*, length 2 to 64"
        )
    seconds = _duration(form.get("DurationSeconds", "3600"))
    account_id, role_name = match.group(2), match.group(3)
    account = accounts.get(account_id)
    role = account.role(role_name) if account and account.state == "ACTIVE" else None
    # A role in another partition (aws-cn, aws-us-gov) is out of reach of this one's callers.
    foreign = match.group(1) != caller_arn.split(":")[1]
    if (
        role is None
        or foreign
        or (role.external_id is not None and form.get("ExternalId") != role.external_id)
    ):
        raise ApiError(
            "AccessDenied",
            f"User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {arn}",
            403,
        )
    session = Session(account=account_id, role=role_name, name=name, expires_at=now + seconds)
    key = keys.issue(session)
    expiration = dt.datetime.fromtimestamp(session.expires_at, dt.UTC)
    role_id = f"AROA{account_id}EMULATOR"
    return _response(
        "AssumeRole",
        f"""<Credentials>
      <AccessKeyId>{key}</AccessKeyId>
      <SecretAccessKey>{secrets.token_urlsafe(30)}</SecretAccessKey>
      <SessionToken>{secrets.token_urlsafe(96)}</SessionToken>
      <Expiration>{expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>{role_id}:{escape(name)}</AssumedRoleId>
      <Arn>{escape(session_arn(session))}</Arn>
    </AssumedRoleUser>
    <PackedPolicySize>0</PackedPolicySize>""",
    )


def caller_identity(account: str, arn: str) -> str:
    """Answer GetCallerIdentity for a caller of ``account`` known as ``arn``."""
    return _response(
        "GetCallerIdentity",
        f"""<Arn>{escape(arn)}</Arn>
    <UserId>AIDAEMULATOREXAMPLE</UserId>
    <Account>{account}</Account>""",
    )


def session_arn(session: Session) -> str:
    return f"arn:aws:sts::{session.account}:assumed-role/{session.role}/{session.name}"


def xml_error(error: ApiError) -> str:
    kind = "Receiver" if error.status >= 500 else "Sender"
    return (
        f'<ErrorResponse xmlns="{_NS}"><Error><Type>{kind}</Type><Code>{error.code}</Code>'
        f"<Message>{escape(error.message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )


def _response(action: str, result: str) -> str:
    return f"""<{action}Response xmlns="{_NS}">
  <{action}Result>
    {result}
  </{action}Result>
  <ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>
</{action}Response>
"""


def _duration(text: str) -> int:
    low, high = _DURATION
    try:
        seconds = int(text)
    except ValueError:
        raise _validation(f"DurationSeconds {text!r} is not a whole number") from None
    if not low <= seconds <= high:
        raise _validation(
            f"Value '{seconds}' at 'durationSeconds' failed to satisfy constraint: Member must "
            f"have value between {low} and {high}"
        )
    return seconds


def _validation(message: str) -> ApiError:
    return ApiError("ValidationError", f"1 validation error detected: {message}")
