"""Settings of a run: rates, limits, retries and how to reach Lightsail."""

from __future__ import annotations

import enum
import math
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from batchcopy.accounts import Access
from batchcopy.errors import SettingsError
from batchcopy.provenance import is_reserved
from batchcopy.ratestate import MAX_AGE, MIN_RATE
from batchcopy.retry import RetryPolicy

__all__ = ["MIN_RATE", "OnExists", "Settings"]


class OnExists(enum.StrEnum):
    """What to do with a target that exists before the run, made from the same source."""

    SKIP = "skip"
    FAIL = "fail"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """How a run behaves. Every value is checked here, so a bad one fails before any call."""

    rate: float = 5.0  # CopySnapshot requests per second, per target region, to start with
    # The adaptive rate never goes above this (rate may not be set above it). Only a safety cap by
    # default: a region that throttles does so far below it, and a lower cap would hold
    # back a region that does not (1000 held one region to ~900 copies/s here).
    max_rate: float = 10_000.0
    adaptive: bool = True  # cut the rate on throttles and probe upward while calls succeed
    # rate was chosen for this run (--rate): it wins over a rate remembered in rate_state.
    rate_chosen: bool = False
    # Where each lane's learned rate is remembered between runs (batchcopy.ratestate), and
    # where it starts from; None: nothing is remembered. The CLI's default is
    # batchcopy.ratestate.default_path().
    rate_state: Path | None = None
    rate_state_max_age: float = MAX_AGE  # seconds: an older remembered rate is not used
    burst: int = 5  # requests that may go at once after a quiet spell
    max_in_flight: int = 128  # jobs open at once per target region, at most (follows the rate)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    on_exists: OnExists = OnExists.SKIP
    profile: str | None = None  # AWS profile; None: aiobotocore's usual chain
    endpoint_url: str | None = None  # None: AWS_ENDPOINT_URL_LIGHTSAIL or the real endpoint
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    wait: bool = False  # follow each accepted copy until it succeeds or fails
    wait_timeout: float = 3600.0  # seconds a copy is followed before it counts as in_progress
    wait_read_rate: float = 2.0  # status checks per second, per target region, while waiting
    tags: tuple[tuple[str, str], ...] = ()  # put on every copy (TagResource)
    copy_tags: bool = False  # also put the source snapshot's tags on its copy
    run_id: str = ""  # the batchcopy:run-id tag; copy_snapshots sets one
    # Added to every request's User-Agent, so the service (or the emulator) can tell which
    # process sent it: a shard's run sets batchcopy-shard/I-N.
    user_agent_extra: str = ""
    access: Access = field(default_factory=Access)  # roles that reach other accounts
    # Static credentials, for the built-in emulator; None uses the normal credential chain.
    credentials: tuple[str, str] | None = field(default=None, repr=False)

    @staticmethod
    def _check_endpoint(url: str) -> None:
        # Userinfo first, before any message shows the URL: a password in it must never
        # reach a terminal or a log, whatever else is wrong with the URL. Anywhere in it,
        # since a malformed URL (a "/" in the password) hides where userinfo would end.
        if "@" in url:
            # botocore refuses it on every request, and it would end up in logs.
            raise SettingsError(
                "must not hold a user name or password (user:password@); credentials come "
                "from the AWS profile or environment",
                field="endpoint_url",
            )
        if url != url.strip():
            raise SettingsError(
                f"has spaces around it: {url!r}; give the URL alone", field="endpoint_url"
            )
        if not url.lower().startswith(("http://", "https://")):  # schemes ignore case
            # An empty one too: it would silently mean Lightsail's own endpoint.
            raise SettingsError(
                f"must start with http:// or https://, got {url!r}", field="endpoint_url"
            )
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError as exc:  # an unclosed IPv6 bracket: "Invalid IPv6 URL"
            raise SettingsError(f"is not a URL ({exc}): {url!r}", field="endpoint_url") from None
        try:
            parts.port  # noqa: B018 - urllib checks the port only when asked for it
        except ValueError:
            raise SettingsError(
                f"has a port out of range 1-65535: {url!r}", field="endpoint_url"
            ) from None
        if not parts.hostname:
            raise SettingsError(f"names no host: {url!r}", field="endpoint_url")

    def __post_init__(self) -> None:
        # "not 0 < x < inf" also refuses NaN, which every comparison fails.
        for name in ("rate", "max_rate", "wait_read_rate"):
            value = getattr(self, name)
            if not MIN_RATE <= value < math.inf:
                raise SettingsError(
                    f"must be a finite number of at least {MIN_RATE:g} (requests per second), "
                    f"got {value:g}",
                    field=name,
                )
        if self.max_rate < self.rate:
            # The cap is a promise: a start above it is refused, never quietly raised.
            raise SettingsError(f"{self.max_rate:g} is below rate {self.rate:g}", field="max_rate")
        for name in ("burst", "max_in_flight"):
            if getattr(self, name) < 1:
                raise SettingsError(f"must be at least 1, got {getattr(self, name)}", field=name)
        for name in ("connect_timeout", "read_timeout", "wait_timeout", "rate_state_max_age"):
            value = getattr(self, name)
            if not 0 < value < math.inf:
                raise SettingsError(
                    f"must be a finite number of seconds above 0, got {value:g}", field=name
                )
        if self.endpoint_url is not None:
            self._check_endpoint(self.endpoint_url)
        for key, _ in self.tags:
            if is_reserved(key):
                raise SettingsError(
                    f"{key!r}: batchcopy: keys are batchcopy's provenance; choose another key",
                    field="tag",
                )
        if self.on_exists not in tuple(OnExists):
            raise SettingsError(f"must be skip or fail, got {self.on_exists!r}", field="on_exists")
