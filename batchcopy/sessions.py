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

import os
import re
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.credentials import (
    AioAssumeRoleCredentialFetcher,
    AioCredentialResolver,
    AnyioDeferredRefreshableCredentials,
)
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.session import AioSession
from botocore.credentials import CredentialProvider

from batchcopy.errors import CredentialsError, LightsailError, PermanentError, SettingsError
from batchcopy.memo import Memo
from batchcopy.settings import Settings
from batchcopy.translate import PARSER_CHOKED, malformed, translate_error

__all__ = [
    "ASSUME_ROLE_FAILED",
    "NoRedirects",
    "RoleCredentials",
    "Sessions",
    "caller_identity",
    "sts_endpoint",
]

ASSUME_ROLE_FAILED = "AssumeRoleFailed"
# AssumeRole is called by botocore's credential machinery, outside batchcopy's retry layer:
# a few tries of its own ride out a throttle of STS when hundreds of accounts start at once.
_STS_ATTEMPTS = 5

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


async def caller_identity(settings: Settings) -> dict[str, str]:
    """The ``account`` and ``arn`` the credentials belong to (STS GetCallerIdentity, which
    needs no permission), found as :class:`LightsailClients` finds them: the profile, the
    usual chain, or the settings' static credentials.

    STS goes where :func:`sts_endpoint` says: ``AWS_ENDPOINT_URL_STS`` when set, else
    Lightsail's own endpoint when one is given, else botocore's choice."""
    session = AioSession(profile=settings.profile)
    kwargs: dict[str, Any] = {
        "config": AioConfig(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            http_session_cls=NoRedirects,
        )
    }
    if settings.credentials:
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
    return {"account": account, "arn": arn}


def sts_endpoint(settings: Settings, session: AioSession | None = None) -> str | None:
    """Where STS is called when it is not botocore's own choice: at Lightsail's endpoint
    (``endpoint_url``, or ``AWS_ENDPOINT_URL_LIGHTSAIL``) unless ``AWS_ENDPOINT_URL_STS``
    is set or that endpoint is AWS's own.

    An endpoint of one's own is a stand-in (the emulator) that answers STS at the same URL;
    sending STS to AWS instead would check credentials the stand-in never sees, or fail
    offline. ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` makes both variables count for
    nothing, as in botocore (read from ``session``'s configuration when one is given)."""
    if session is not None:
        ignored = bool(session.get_config_variable("ignore_configured_endpoint_urls"))
    else:
        ignored = os.environ.get(_IGNORE_ENDPOINTS, "").lower() == "true"
    if os.environ.get("AWS_ENDPOINT_URL_STS") and not ignored:
        return None  # botocore reads it itself
    url = settings.endpoint_url or (None if ignored else os.environ.get(_LIGHTSAIL_ENDPOINT))
    if not url or _AWS_HOST.match(url):
        return None
    return url


class RoleCredentials(AnyioDeferredRefreshableCredentials):  # type: ignore[misc]  # untyped
    """An assumed role's keys: fetched on first use, refreshed ahead of expiry (a quarter
    of their lifetime ahead, at most botocore's 15 minutes), renewed on demand."""

    def __init__(self, fetcher: AioAssumeRoleCredentialFetcher, cache: dict[str, Any], ahead: int):
        super().__init__(refresh_using=fetcher.fetch_credentials, method="assume-role")
        self._cache = cache
        self._advisory_refresh_timeout = ahead
        self._mandatory_refresh_timeout = ahead // 2

    @property
    def key_in_use(self) -> str | None:
        """The access key id calls are signed with now (None before the first fetch)."""
        key: str | None = self._access_key
        return key

    async def renew(self, refused: str | None) -> None:
        """Assume the role again, because the service refused ``refused`` as expired; once,
        however many calls saw it: if the key has changed since, nothing is done."""
        async with self._refresh_lock:
            if self._access_key != refused:
                return
            self._cache.clear()  # or the fetcher would hand back the refused keys
            await self._protected_refresh(is_mandatory=True)


class _Given(CredentialProvider):  # type: ignore[misc]  # botocore is untyped
    """A credential chain of one link: the account's assumed-role credentials."""

    METHOD = CANONICAL_NAME = "assume-role"

    def __init__(self, credentials: RoleCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    async def load(self) -> RoleCredentials:
        return self._credentials


Reached = tuple[AioSession, RoleCredentials | None]


class Sessions:
    """The aiobotocore session of each account a run reaches: the base one for rows without
    an account and for the base credentials' own account, an assumed role's for any other.

    An account whose role cannot be assumed is a :class:`PermanentError` with code
    :data:`ASSUME_ROLE_FAILED` naming the role and the reason, raised for every lane of that
    account from the one failed attempt.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.base = AioSession(profile=settings.profile)
        if settings.credentials:
            self.base.set_credentials(*settings.credentials)
        self._reached = Memo()  # account -> Reached, or the LightsailError it came to
        self._identity = Memo()

    def __repr__(self) -> str:
        return f"<Sessions {self._reached!r}>"

    async def reach(self, account: str) -> Reached:
        """The session of ``account`` ("": the base credentials'), and the renewable
        credentials when a role was assumed."""
        if not account:
            return self.base, None
        reached = await self._reached.get(account, lambda: self._assume(account))
        if isinstance(reached, LightsailError):
            raise reached
        assert isinstance(reached, tuple)
        return reached

    async def base_account(self) -> str:
        """The base credentials' account (GetCallerIdentity, once)."""
        identity = await self._identity.get("base", lambda: caller_identity(self._settings))
        assert isinstance(identity, dict)
        return str(identity["account"])

    async def _assume(self, account: str) -> Reached | LightsailError:
        if account == await self.base_account():
            return self.base, None
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
        credentials = RoleCredentials(fetcher, cache, ahead)
        try:
            await credentials.get_frozen_credentials()
        except Exception as exc:
            reason = translate_error(exc)
            return PermanentError(ASSUME_ROLE_FAILED, f"cannot assume {arn}: {reason}")
        session = AioSession(profile=self._settings.profile)
        # The models are read once, by the base session, not once per account.
        session.register_component("data_loader", self.base.get_component("data_loader"))
        session.register_component(
            "credential_provider", AioCredentialResolver([_Given(credentials)])
        )
        return session, credentials

    def _sts_client(self, service: str, **credentials: Any) -> Any:
        """An STS client for the credential fetcher, at the endpoint STS is called at."""
        settings = self._settings
        config = AioConfig(
            retries={"mode": "standard", "total_max_attempts": _STS_ATTEMPTS},
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            http_session_cls=NoRedirects,
        )
        kwargs: dict[str, Any] = {
            "config": config,
            "region_name": self.base.get_config_variable("region") or "us-east-1",
        }
        if endpoint := sts_endpoint(settings, self.base):
            kwargs["endpoint_url"] = endpoint
        return self.base.create_client(service, **kwargs, **credentials)
