"""aiobotocore sessions and STS: the base credentials, an assumed role's per account, and
where STS is called.

Rows of other accounts than the base credentials' own run with a role assumed in their
account (:class:`batchcopy.accounts.Access` says which): one AssumeRole per account, shared
by all its regions, through aiobotocore's own machinery (``AioAssumeRoleCredentialFetcher``
feeding deferred refreshable credentials), so a run of many hours gets fresh keys before
the old ones expire. Keys the service calls expired anyway (revoked, or a clock off) are
renewed at once, by one caller for all. Only this module and :mod:`batchcopy.lightsail`
import aiobotocore.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Container,
    Iterable,
    Sequence,
)
from contextvars import ContextVar, Token
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.credentials import (
    AioAssumeRoleCredentialFetcher,
    AnyioDeferredRefreshableCredentials,
)
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.session import AioSession

from batchcopy.errors import (
    CredentialsError,
    EndpointUnreachableError,
    LightsailError,
    PermanentError,
    SettingsError,
    ThrottledError,
    TransientError,
)
from batchcopy.limits import RateLimiter
from batchcopy.memo import Memo
from batchcopy.retry import RetryPolicy, guarded, paced
from batchcopy.settings import Settings
from batchcopy.translate import (
    MALFORMED_ANSWER,
    PARSER_CHOKED,
    malformed,
    refused,
    translate_error,
)

__all__ = [
    "ASSUME_ROLE_FAILED",
    "NoRedirects",
    "RoleCredentials",
    "Sessions",
    "asked_identity",
    "caller_identity",
    "organization_accounts",
    "roleless",
    "service_endpoint",
    "sign_as_account",
    "signing_as",
    "stop_signing_as",
    "sts_endpoint",
    "written_twice",
    "written_twice_problem",
]

ASSUME_ROLE_FAILED = "AssumeRoleFailed"
# Organizations' listing is paged by botocore's paginator, outside batchcopy's retry layer:
# a few tries of its own ride out a throttle or a fault of one page. (AssumeRole has one
# attempt a try: each try waits its turn on the AssumeRole budget, see RoleCredentials.)
_ORG_ATTEMPTS = 5
# AssumeRole calls a second, to start with and at most: they share the caller's STS limit
# with every other tool of that account, and nothing else paces them (a throttle slows
# the pace, as the copies' rate adapts).
ASSUME_RATE = 10.0
ASSUME_MAX_RATE = 500.0
# Pages of one Organizations listing at most: 20 accounts a page, empty pages between, and
# organizations of tens of thousands of accounts still end far below it.
_ORG_PAGES = 10_000

_LIGHTSAIL_ENDPOINT = "AWS_ENDPOINT_URL_LIGHTSAIL"
_IGNORE_ENDPOINTS = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"
# An endpoint of AWS itself serves Lightsail alone; STS has endpoints of its own there.
_AWS_HOST = re.compile(r"https?://([^/:@]+\.)?amazonaws\.com(\.cn)?([:/]|$)", re.IGNORECASE)


class NoRedirects(AIOHTTPSession):  # type: ignore[misc]  # untyped
    """aiobotocore's HTTP session, following no redirect. Lightsail and STS never redirect:
    a 3xx comes from something else (a proxy, a captive portal), and following it would
    send a signed request, a copy's body and all, to a host nobody chose. The 3xx reaches
    botocore as an error answer instead (:func:`batchcopy.translate.translate_error`)."""

    async def _get_session(self, proxy_url: Any) -> Any:
        # aiohttp follows redirects unless each request says not to; aiobotocore makes its
        # requests here, through the session this returns.
        return _Unredirected(await super()._get_session(proxy_url))


class _Unredirected:
    """An aiohttp ClientSession whose requests never follow a redirect."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def request(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.request(*args, allow_redirects=False, **kwargs)


async def caller_identity(
    settings: Settings,
    session: AioSession | None = None,
    *,
    credentials: RoleCredentials | None = None,
) -> dict[str, str]:
    """The ``account`` and ``arn`` the credentials belong to (STS GetCallerIdentity, which
    needs no permission), found as :class:`LightsailClients` finds them: the profile, the
    usual chain, or the settings' static credentials; or ``session``'s, or an assumed role's
    ``credentials``.

    STS goes where :func:`sts_endpoint` says: ``AWS_ENDPOINT_URL_STS`` when set, else
    Lightsail's own endpoint when one is given, else botocore's choice."""
    given = session is not None
    session = session or AioSession(profile=settings.profile)
    kwargs: dict[str, Any] = {
        "config": AioConfig(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            http_session_cls=NoRedirects,
            user_agent_extra=settings.user_agent_extra or None,
        )
    }
    if credentials is not None:
        keys = await credentials.get_frozen_credentials()
        kwargs.update(
            aws_access_key_id=keys.access_key,
            aws_secret_access_key=keys.secret_key,
            aws_session_token=keys.token,
        )
    elif settings.credentials and not given:
        key, secret = settings.credentials
        kwargs.update(aws_access_key_id=key, aws_secret_access_key=secret)
    try:
        if endpoint := sts_endpoint(settings, session):
            kwargs["endpoint_url"] = endpoint
        # STS answers in every region; a run never needs a default one, so none is required.
        kwargs["region_name"] = session.get_config_variable("region") or "us-east-1"
        async with session.create_client("sts", **kwargs) as sts:
            try:
                response = await sts.get_caller_identity()
            except PARSER_CHOKED as exc:
                raise malformed("GetCallerIdentity", "answer") from exc
    except ValueError as exc:  # botocore's word for a malformed endpoint or region
        raise SettingsError(f"cannot make an STS client: {exc}") from None
    except Exception as exc:
        raise translate_error(exc) from exc
    account, arn = response.get("Account"), response.get("Arn")
    if not (isinstance(account, str) and account and isinstance(arn, str)):
        raise malformed("GetCallerIdentity", "Account")
    parts = arn.split(":")
    if len(parts) < 6 or parts[4] != account:
        # Which account the keys belong to decides where copies land: an answer that
        # contradicts itself is no answer.
        raise malformed("GetCallerIdentity", f"Account ({account} is not the Arn's, {arn})")
    return {"account": account, "arn": arn}


def sts_endpoint(settings: Settings, session: AioSession | None = None) -> str | None:
    """Where STS is called: see :func:`service_endpoint`."""
    return service_endpoint(settings, "sts", session)


def service_endpoint(
    settings: Settings, service: str, session: AioSession | None = None
) -> str | None:
    """Where ``service`` (STS, Organizations) is called when it is not botocore's own
    choice: at Lightsail's endpoint (``endpoint_url``, or ``AWS_ENDPOINT_URL_LIGHTSAIL``)
    unless ``AWS_ENDPOINT_URL_<SERVICE>`` is set or that endpoint is AWS's own.

    An endpoint of one's own is a stand-in (the emulator) that answers STS and
    Organizations at the same URL; sending them to AWS instead would check credentials the
    stand-in never sees, or fail offline. ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` makes the
    variables count for nothing, as in botocore (read from ``session``'s configuration when
    one is given)."""
    if session is not None:
        ignored = bool(session.get_config_variable("ignore_configured_endpoint_urls"))
    else:
        ignored = os.environ.get(_IGNORE_ENDPOINTS, "").lower() == "true"
    if os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") and not ignored:
        return None  # botocore reads it itself
    url = settings.endpoint_url or (None if ignored else os.environ.get(_LIGHTSAIL_ENDPOINT))
    if not url or _AWS_HOST.match(url):
        return None
    return url


class RoleCredentials(AnyioDeferredRefreshableCredentials):  # type: ignore[misc]  # untyped
    """An assumed role's keys: fetched on first use, refreshed ahead of expiry (a quarter
    of their lifetime ahead, at most botocore's 15 minutes), renewed on demand. Each
    AssumeRole waits its turn on ``budget`` (shared by every account: the caller's STS
    limit) and is retried under ``policy`` when STS throttles or fails."""

    def __init__(
        self,
        fetcher: AioAssumeRoleCredentialFetcher,
        cache: dict[str, Any],
        ahead: int,
        *,
        budget: RateLimiter | None = None,
        policy: RetryPolicy | None = None,
        now: Callable[[], datetime.datetime] | None = None,
    ):
        """``now`` is the clock that decides when to refresh (UTC now, by default)."""
        super().__init__(
            refresh_using=fetcher.fetch_credentials,
            method="assume-role",
            time_fetcher=now or _utc_now,
        )
        self._role_arn = fetcher._role_arn
        self._cache = cache
        self._advisory_refresh_timeout = ahead
        self._mandatory_refresh_timeout = ahead // 2
        self._budget = budget or RateLimiter(ASSUME_RATE, max_rate=ASSUME_MAX_RATE)
        self._policy = policy or RetryPolicy()

    @property
    def key_in_use(self) -> str | None:
        """The access key id calls are signed with now (None before the first fetch)."""
        key: str | None = self._access_key
        return key

    async def _protected_refresh(self, is_mandatory: bool) -> None:
        """botocore's refresh, paced and retried, its failures made the account's: a role
        that can no longer be assumed (or keys that come back expired), or STS throttling
        or failing past the retry policy, fails the calls of that account only, as
        AssumeRoleFailed, never the run."""
        refresh = super()._protected_refresh

        async def once() -> None:
            try:
                await refresh(is_mandatory)
            except LightsailError:
                raise
            except Exception as exc:
                fault = translate_error(exc)
                if isinstance(fault, ThrottledError | TransientError):
                    raise fault from exc  # STS busy or failing: its turn again, later
                raise PermanentError(
                    ASSUME_ROLE_FAILED, f"cannot assume {self._role_arn}: {_why(exc)}"
                ) from exc

        try:
            await paced(self._budget, once, self._policy)
        except (ThrottledError, TransientError) as exc:
            raise PermanentError(
                ASSUME_ROLE_FAILED, f"cannot assume {self._role_arn}: {exc}"
            ) from exc

    async def renew(self, refused: str | None) -> None:
        """Assume the role again, because the service refused ``refused`` as expired; once,
        however many calls saw it: if the key has changed since, nothing is done."""
        async with self._refresh_lock:
            if self._access_key != refused:
                return
            self._cache.clear()  # or the fetcher would hand back the refused keys
            await self._protected_refresh(is_mandatory=True)


def _utc_now() -> datetime.datetime:
    """Now, as an aware time. botocore's own clock makes a new local time zone object on
    every call, and the keys' lifetime is checked before every request: that was 3% of a
    many-account run's CPU. Expiry times are aware, so the zone does not matter."""
    return datetime.datetime.now(datetime.UTC)


# The assumed role whose keys sign the calls made in this task (None: the client's own, the
# base credentials'). Clients are per region and shared by every account: a call is signed
# as its account by botocore's request_credentials, set from here just before signing.
_SIGNING_AS: ContextVar[RoleCredentials | None] = ContextVar("batchcopy_signing_as", default=None)


def signing_as(credentials: RoleCredentials | None) -> Token[RoleCredentials | None]:
    """Sign the calls this task makes from now on with ``credentials``; returns the token
    that :func:`stop_signing_as` takes back."""
    return _SIGNING_AS.set(credentials)


def stop_signing_as(token: Token[RoleCredentials | None]) -> None:
    _SIGNING_AS.reset(token)


def sign_as_account(request: Any, **_: Any) -> None:
    """A ``before-sign`` handler: give the request the keys of the account it is made for."""
    credentials = _SIGNING_AS.get()
    if credentials is not None:
        request.context.setdefault("signing", {})["request_credentials"] = credentials


def _why(exc: BaseException) -> str:
    """What went wrong with AssumeRole, in words: botocore's error, or, for an answer it
    could not make keys of (no Expiration, an HTML page), that."""
    if isinstance(exc, PARSER_CHOKED):
        return f"STS answered without usable credentials ({type(exc).__name__}: {exc})"
    return str(translate_error(exc) if isinstance(exc, Exception) else exc)


def _refresh_said_once(record: logging.LogRecord) -> bool:
    """aiobotocore logs a failed AssumeRole as a warning with its traceback; batchcopy says
    it once, as the account's AssumeRoleFailed, so here it is only a debug record."""
    if record.levelno == logging.WARNING and "temporary credentials failed" in record.getMessage():
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
    return True


class _Borrowed:
    """A shared client lent as ``async with``: leaving the block does not close it."""

    def __init__(self, client: Callable[[], Awaitable[Any]]) -> None:
        self._client = client

    async def __aenter__(self) -> Any:
        return await self._client()

    async def __aexit__(self, *exc: object) -> None:
        return None


class Sessions:
    """The credentials of each account a run reaches: the base ones for rows without an
    account and for the base credentials' own account, an assumed role's for any other.
    One aiobotocore session (the base one) and one STS client serve them all.

    An account whose role cannot be assumed is a :class:`PermanentError` with code
    :data:`ASSUME_ROLE_FAILED` naming the role and the reason, raised for every lane of that
    account from the one failed attempt.
    """

    def __init__(
        self, settings: Settings, *, now: Callable[[], datetime.datetime] | None = None
    ) -> None:
        """``now``: the clock that decides when assumed-role keys are refreshed."""
        self._settings = settings
        self._now = now
        self.base = AioSession(profile=settings.profile)
        if settings.credentials:
            self.base.set_credentials(*settings.credentials)
        self._reached = Memo()  # account -> RoleCredentials | None, or its LightsailError
        self._identity = Memo()
        self._assuming = RateLimiter(ASSUME_RATE, max_rate=ASSUME_MAX_RATE)
        self._sts: Any = None  # the shared STS client, once made
        logging.getLogger("aiobotocore.credentials").addFilter(_refresh_said_once)

    def __repr__(self) -> str:
        return f"<Sessions {self._reached!r}>"

    async def reach(self, account: str) -> RoleCredentials | None:
        """The renewable credentials of ``account``'s role; None for the base credentials
        ("", or the base credentials' own account)."""
        if not account:
            return None
        reached = await self._reached.get(account, lambda: self._assume(account))
        if isinstance(reached, LightsailError):
            raise reached
        assert reached is None or isinstance(reached, RoleCredentials)
        return reached

    async def base_account(self) -> str:
        """The base credentials' account (GetCallerIdentity, once, under the retry policy).
        STS that cannot be connected to at all ends the run, as a Lightsail endpoint that
        never answers does: :class:`EndpointUnreachableError`."""

        where = sts_endpoint(self._settings, self.base) or "STS"

        async def ask() -> dict[str, str]:
            try:
                return await asked_identity(self._settings, self.base)
            except TransientError as exc:
                if exc.ambiguous:
                    raise
                raise EndpointUnreachableError(where, check=_STS_SETTINGS) from exc

        identity = await self._identity.get("base", ask)
        assert isinstance(identity, dict)
        return str(identity["account"])

    async def close(self) -> None:
        if self._sts is not None:
            sts, self._sts = self._sts, None
            await sts.close()

    async def _assume(self, account: str) -> RoleCredentials | LightsailError | None:
        if account == await self.base_account():
            return None
        access = self._settings.access
        arn = access.role_arn(account)
        if arn is None:
            return PermanentError(
                ASSUME_ROLE_FAILED,
                f"no role to assume in account {account}: give --role-name, or a role for it "
                "in the --accounts file",
            )
        source = await self.base.get_credentials()
        if source is None:
            raise CredentialsError("no AWS credentials to assume roles with")
        extra: dict[str, Any] = {
            "RoleSessionName": access.session_for(self._settings.run_id),
            "DurationSeconds": access.duration,
        }
        if external := access.external_id_for(account):
            extra["ExternalId"] = external
        ahead = min(15 * 60, access.duration // 4)
        cache: dict[str, Any] = {}
        fetcher = AioAssumeRoleCredentialFetcher(
            client_creator=self._sts_client,
            source_credentials=source,
            role_arn=arn,
            extra_args=extra,
            cache=cache,
            expiry_window_seconds=ahead,
        )
        credentials = RoleCredentials(
            fetcher,
            cache,
            ahead,
            budget=self._assuming,
            policy=self._settings.retry,
            now=self._now,
        )

        async def first_keys() -> None:
            try:
                await credentials.get_frozen_credentials()
            except PermanentError as exc:
                cause = exc.__cause__
                fault = translate_error(cause) if isinstance(cause, Exception) else None
                if isinstance(fault, ThrottledError | TransientError):
                    raise fault from exc  # a throttle or a fault of STS: retried, then said
                raise

        try:
            await first_keys()  # paced and retried by the keys' own refresh
        except (ThrottledError, TransientError) as exc:
            # Not kept: the account's next lane asks again.
            raise PermanentError(ASSUME_ROLE_FAILED, f"cannot assume {arn}: {exc}") from exc
        except PermanentError as exc:
            return exc  # kept: AccessDenied and the like do not pass
        return credentials

    def _sts_client(self, service: str, **_source: Any) -> _Borrowed:
        """The STS client the credential fetcher asks for: one, shared by every account,
        signed with the base credentials (the source credentials it passes are those)."""
        return _Borrowed(self.sts)

    async def sts(self) -> Any:
        """The shared STS client, made on first use, at the endpoint STS is called at.
        botocore's own retries are off: each AssumeRole try is one request, paced and
        retried by :class:`RoleCredentials` (retries of its own, unpaced, multiplied the
        requests a throttled STS saw by five)."""
        if self._sts is None:
            settings = self._settings
            config = AioConfig(
                retries={"mode": "standard", "total_max_attempts": 1},
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                http_session_cls=NoRedirects,
                user_agent_extra=settings.user_agent_extra or None,
            )
            kwargs: dict[str, Any] = {
                "config": config,
                "region_name": self.base.get_config_variable("region") or "us-east-1",
            }
            if endpoint := sts_endpoint(settings, self.base):
                kwargs["endpoint_url"] = endpoint
            try:
                self._sts = await self.base.create_client("sts", **kwargs).__aenter__()
            except ValueError as exc:  # botocore's word for a malformed endpoint or region
                raise SettingsError(f"cannot make an STS client: {exc}") from None
        return self._sts


async def organization_accounts(
    settings: Settings, *, units: Sequence[str] = (), exclude: Container[str] = ()
) -> list[str]:
    """The ACTIVE accounts of the organization the base credentials manage, sorted: every
    one, or those under ``units`` (organizational unit or root ids, their sub-units
    included), less ``exclude``. Organizations is called where :func:`service_endpoint`
    says; its pages (empty ones with a token too) are followed by botocore's paginators."""
    session = AioSession(profile=settings.profile)
    if settings.credentials:
        session.set_credentials(*settings.credentials)
    kwargs: dict[str, Any] = {
        "region_name": "us-east-1",  # Organizations' one region
        "config": AioConfig(
            retries={"mode": "standard", "total_max_attempts": _ORG_ATTEMPTS},
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            http_session_cls=NoRedirects,
        ),
    }
    found: dict[str, str] = {}
    try:
        if endpoint := service_endpoint(settings, "organizations", session):
            kwargs["endpoint_url"] = endpoint
        async with session.create_client("organizations", **kwargs) as org:

            async def pages(operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
                items: list[dict[str, Any]] = []
                try:
                    paginator = org.get_paginator(operation).paginate(**params)
                    async for count, page in _counted(paginator):
                        items += [i for i in page.get(key) or () if isinstance(i, dict)]
                        if count >= _ORG_PAGES:
                            raise TransientError(
                                MALFORMED_ANSWER,
                                f"{operation} was still paging after {_ORG_PAGES} pages; is "
                                "--endpoint-url (or AWS_ENDPOINT_URL_ORGANIZATIONS) AWS's?",
                                ambiguous=False,
                            )
                except PARSER_CHOKED as exc:
                    raise malformed(operation, "answer") from exc
                except Exception as exc:
                    raise translate_error(exc) from exc
                return items

            if not units:
                accounts = await pages("list_accounts", "Accounts")
            else:
                queue = [await _unit_id(unit, pages) for unit in units]
                accounts = []
                while queue:  # each unit, then its sub-units
                    parent = queue.pop()
                    try:
                        accounts += await pages(
                            "list_accounts_for_parent", "Accounts", ParentId=parent
                        )
                    except PermanentError as exc:
                        if exc.code != "ParentNotFoundException":
                            raise
                        message = f"{parent}: no such organizational unit or root"
                        raise SettingsError(message, field="ou") from None
                    children = await pages(
                        "list_organizational_units_for_parent",
                        "OrganizationalUnits",
                        ParentId=parent,
                    )
                    queue += [str(c["Id"]) for c in children if c.get("Id")]
            for account in accounts:
                state = account.get("State") or account.get("Status")
                account_id = account.get("Id")
                if isinstance(account_id, str) and state == "ACTIVE":
                    found[account_id] = state
    except ValueError as exc:  # botocore's word for a malformed endpoint or region
        raise SettingsError(f"cannot make an Organizations client: {exc}") from None
    except PermanentError as exc:
        if exc.code not in _ORG_REFUSALS:
            raise
        raise PermanentError(exc.code, f"{exc.message} {_ORG_HINT}", status=exc.status) from exc
    except Exception as exc:
        raise translate_error(exc) from exc
    return sorted(a for a in found if a not in exclude)


# Organizations refusing the base credentials, and what to do about it.
_ORG_REFUSALS = frozenset(
    {"AccessDenied", "AccessDeniedException", "AWSOrganizationsNotInUseException"}
)
_ORG_HINT = (
    "(listing an organization's accounts takes the management account's credentials, or a "
    "delegated administrator's, allowed organizations:ListAccounts, ListRoots, "
    "ListAccountsForParent and ListOrganizationalUnitsForParent: see "
    "examples/iam/caller-policy.json; or name the accounts in --accounts FILE instead)"
)


async def roleless(settings: Settings, accounts: Iterable[str]) -> list[str]:
    """The accounts of ``accounts`` that nothing reaches: no role is named for them
    (``--role-name``, the accounts file) and they are not the base credentials' own. One
    GetCallerIdentity, and only when some account has no role named."""
    missing = sorted({a for a in accounts if a and settings.access.role_arn(a) is None})
    if not missing:
        return []
    base = (await caller_identity(settings))["account"]
    return [account for account in missing if account != base]


_STS_SETTINGS = "--endpoint-url and AWS_ENDPOINT_URL_STS"  # where STS's address comes from


async def asked_identity(settings: Settings, session: AioSession | None = None) -> dict[str, str]:
    """:func:`caller_identity` under the settings' retry policy. STS that refuses the
    connection is :class:`EndpointUnreachableError` at once: nothing listens there, and
    retrying only delays saying so."""
    where = sts_endpoint(settings, session) if session is not None else None

    async def once() -> dict[str, str]:
        try:
            return await caller_identity(settings, session)
        except TransientError as exc:
            if isinstance(exc.__cause__, Exception) and refused(exc.__cause__):
                raise EndpointUnreachableError(where or "STS", check=_STS_SETTINGS) from exc
            raise

    return await guarded(once, settings.retry)


def written_twice_problem(account: str) -> str:
    """What is wrong with rows that :func:`written_twice` finds, and what to do."""
    return (
        f"rows name account {account}, the base credentials' own, and other rows name no "
        "account, which is the same one: a target in both would be one copy counted twice; "
        "write it one way (its id on every row of it, or on none)"
    )


async def written_twice(settings: Settings, accounts: Collection[str]) -> str | None:
    """The base credentials' own account, if rows name it by its id while other rows name
    no account: both are that account, so a target in each would be one copy that two
    rows count as theirs (duplicates are found per account as written). None otherwise;
    one GetCallerIdentity, and only when there are rows of both kinds."""
    if "" not in accounts or len(accounts) < 2:
        return None
    base = (await guarded(lambda: caller_identity(settings), settings.retry))["account"]
    return base if base in accounts else None


Pages = Callable[..., Awaitable[list[dict[str, Any]]]]


async def _unit_id(unit: str, pages: Pages) -> str:
    """The id of ``unit``: an id as given (``ou-...``, ``r-...``), or a path of unit names
    from the root (``/Prod/Web``, as the emulator's seeds and the console show them)."""
    if not unit.startswith("/"):
        return unit
    roots = await pages("list_roots", "Roots")
    if not roots or not isinstance(roots[0].get("Id"), str):
        raise SettingsError(f"{unit}: the organization has no root to start from", field="ou")
    current, walked = str(roots[0]["Id"]), ""
    for name in (part for part in unit.split("/") if part):
        children = await pages(
            "list_organizational_units_for_parent", "OrganizationalUnits", ParentId=current
        )
        named = {str(c.get("Name")): str(c.get("Id")) for c in children}
        if name not in named:
            there = ", ".join(sorted(named)) or "none"
            message = f"{unit}: no unit {name!r} under {walked or '/'} (there: {there})"
            raise SettingsError(message, field="ou")
        current, walked = named[name], f"{walked}/{name}"
    return current


async def _counted(pages: AsyncIterator[Any]) -> AsyncIterator[tuple[int, Any]]:
    """``pages`` numbered from 1."""
    count = 0
    async for page in pages:
        count += 1
        yield count, page
