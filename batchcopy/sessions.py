"""aiobotocore sessions and STS: the base credentials, and where STS is called.

Only this module and :mod:`batchcopy.lightsail` import aiobotocore.
"""

from __future__ import annotations

import os
import re
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from batchcopy.errors import SettingsError
from batchcopy.settings import Settings
from batchcopy.translate import PARSER_CHOKED, malformed, translate_error

__all__ = ["caller_identity", "sts_endpoint"]

_LIGHTSAIL_ENDPOINT = "AWS_ENDPOINT_URL_LIGHTSAIL"
_IGNORE_ENDPOINTS = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"
# An endpoint of AWS itself serves Lightsail alone; STS has endpoints of its own there.
_AWS_HOST = re.compile(r"https?://([^/:@]+\.)?amazonaws\.com(\.cn)?([:/]|$)", re.IGNORECASE)


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
