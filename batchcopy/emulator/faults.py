"""Fault injection: per-region throttling, latency, errors, dropped connections and hangs.

Settings come as JSON (``--faults FILE`` or ``POST /_emulator/config``)::

    {"seed": 7, "latency_ms": 50, "error_rate": 0.01,
     "regions": {"eu-west-1": {"copy_rate": 5, "copy_burst": 5}}}

Top-level keys apply to every region; ``regions`` overrides them region by region. Every
random choice is drawn from one generator per region seeded with ``seed`` and the region's
name, so a run with the same settings and the same request order sees the same faults.
"""

from __future__ import annotations

import dataclasses
import math
import random
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from batchcopy.accounts import is_account_id
from batchcopy.facts import lightsail_regions

__all__ = ["FaultConfig", "FaultSettings", "RegionFaults", "TokenBucket"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSettings:
    """What goes wrong in one region. Rates are probabilities per request, 0 to 1."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    copy_rate: float | None = None  # token bucket for mutating calls, requests/s; None: unlimited
    copy_burst: float | None = None  # bucket size; defaults to max(1, copy_rate)
    read_rate: float | None = None
    read_burst: float | None = None
    throttle_status: int = 400  # 400 ThrottlingException or 429 TooManyRequestsException
    error_rate: float = 0.0  # 500 ServiceException, before anything is recorded
    drop_before_rate: float = 0.0  # connection closed before the request takes effect
    drop_after_rate: float = 0.0  # request takes effect, then the connection closes unanswered
    hang_rate: float = 0.0  # request takes effect, the answer comes hang_seconds later
    hang_seconds: float = 30.0
    operation_seconds: float = 1.0  # how long a copy or snapshot creation stays Started
    operation_failure_rate: float = 0.0  # copies that end Failed, their snapshot in error
    # Operations that error, drop and hang apply to; None: every operation.
    actions: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.actions is not None:
            if not isinstance(self.actions, list | tuple) or not all(
                isinstance(a, str) for a in self.actions
            ):
                raise ValueError(
                    f"actions: expected a list of operation names, got {self.actions!r}"
                )
            object.__setattr__(self, "actions", tuple(self.actions))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or f.name == "actions":
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ValueError(f"{f.name}: expected a number, got {value!r}")
            if value < 0:
                raise ValueError(f"{f.name}: must not be negative, got {value}")
            if f.name.endswith("_rate") and not f.name.startswith(("copy", "read")) and value > 1:
                raise ValueError(f"{f.name}: a probability between 0 and 1, got {value}")
        for name in ("copy_rate", "read_rate"):
            if getattr(self, name) == 0:
                raise ValueError(f"{name}: must be above 0 (leave it out for no limit)")
        if self.throttle_status not in (400, 429):
            raise ValueError(f"throttle_status: 400 or 429, got {self.throttle_status}")


_KEYS = frozenset(f.name for f in dataclasses.fields(FaultSettings))


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultConfig:
    """Fault settings for every region, with per-region overrides, per-account overrides
    of those (each with its own per-region ones), and a seed."""

    seed: int = 0
    default: FaultSettings = FaultSettings()
    regions: Mapping[str, FaultSettings] = dataclasses.field(default_factory=dict)
    # Per account id: the settings it overrides, as given, and "regions" of those.
    accounts: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    page_size: int = 100  # items per page of Get*s listings
    empty_pages: bool = False  # Organizations listings answer an empty page (with a token) first

    @classmethod
    def from_json(cls, data: Any) -> FaultConfig:
        """Build from the JSON form; raises ValueError naming the key that is wrong."""
        if not isinstance(data, dict):
            raise ValueError("fault settings must be a JSON object")
        data = dict(data)
        seed = data.pop("seed", 0)
        page_size = data.pop("page_size", 100)
        empty_pages = data.pop("empty_pages", False)
        overrides = data.pop("regions", {}) or {}
        accounts = data.pop("accounts", {}) or {}
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed: expected an integer, got {seed!r}")
        if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
            raise ValueError(f"page_size: expected a positive integer, got {page_size!r}")
        if not isinstance(empty_pages, bool):
            raise ValueError(f"empty_pages: expected true or false, got {empty_pages!r}")
        if not isinstance(overrides, dict):
            raise ValueError("regions: expected an object of region name to settings")
        default = _settings(data, FaultSettings(), "")
        known = set(lightsail_regions())
        regions = {}
        for region, values in overrides.items():
            if region not in known:
                raise ValueError(f"regions.{region}: not a Lightsail region")
            if not isinstance(values, dict):
                raise ValueError(f"regions.{region}: expected an object of settings")
            regions[region] = _settings(values, default, f"regions.{region}.")
        config = cls(
            seed=seed,
            default=default,
            regions=regions,
            page_size=page_size,
            empty_pages=empty_pages,
            accounts=_accounts(accounts),
        )
        for account, given in config.accounts.items():  # every overlay makes valid settings
            for region in (None, *given.get("regions", {})):
                config.for_lane(account, region or "us-east-1", f"accounts.{account}.")
        return config

    def to_json(self) -> dict[str, Any]:
        """The JSON form, as ``GET /_emulator/config`` shows it."""
        default = dataclasses.asdict(self.default)
        return {
            "seed": self.seed,
            "page_size": self.page_size,
            "empty_pages": self.empty_pages,
            **default,
            "regions": {
                region: {k: v for k, v in dataclasses.asdict(s).items() if v != default[k]}
                for region, s in self.regions.items()
            },
            "accounts": {account: dict(given) for account, given in self.accounts.items()},
        }

    def for_region(self, region: str) -> FaultSettings:
        return self.regions.get(region, self.default)

    def for_lane(self, account: str, region: str, where: str = "") -> FaultSettings:
        """An account's settings in ``region``: the region's, then what the account
        overrides, then what it overrides in that region."""
        settings = self.for_region(region)
        given = self.accounts.get(account)
        if given is None:
            return settings
        own = {k: v for k, v in given.items() if k != "regions"}
        settings = _settings(own, settings, where)
        in_region = given.get("regions", {}).get(region, {})
        return _settings(in_region, settings, f"{where}regions.{region}.")


def _accounts(accounts: Any) -> dict[str, dict[str, Any]]:
    """The ``accounts`` overrides as given, checked for shape (their values are checked as
    settings by :meth:`FaultConfig.for_lane`)."""
    if not isinstance(accounts, dict):
        raise ValueError("accounts: expected an object of account id to settings")
    known = set(lightsail_regions())
    for account, given in accounts.items():
        if not is_account_id(account):
            raise ValueError(f"accounts.{account}: not a 12-digit account id")
        if not isinstance(given, dict):
            raise ValueError(f"accounts.{account}: expected an object of settings")
        regions = given.get("regions", {})
        if not isinstance(regions, dict) or not all(isinstance(v, dict) for v in regions.values()):
            raise ValueError(f"accounts.{account}.regions: expected an object of region settings")
        for region in regions:
            if region not in known:
                raise ValueError(f"accounts.{account}.regions.{region}: not a Lightsail region")
    return {account: dict(given) for account, given in accounts.items()}


def _settings(values: Mapping[str, Any], base: FaultSettings, where: str) -> FaultSettings:
    unknown = sorted(set(values) - _KEYS)
    if unknown:
        raise ValueError(
            f"{where}{unknown[0]}: unknown setting (known: {', '.join(sorted(_KEYS))})"
        )
    try:
        return dataclasses.replace(base, **values)
    except ValueError as exc:
        raise ValueError(f"{where}{exc}") from None


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; starts full. Time comes from ``clock``."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()

    def __repr__(self) -> str:
        return f"<TokenBucket rate={self.rate}/s burst={self.burst} tokens={self._tokens:.2f}>"

    def take(self) -> bool:
        """Take one token if there is one."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RegionFaults:
    """The live fault state of one region: its settings, random generator and buckets."""

    def __init__(
        self,
        region: str,
        config: FaultConfig,
        clock: Callable[[], float],
        *,
        stream: str | None = None,
        account: str = "",
    ) -> None:
        """``stream`` names the random sequence (the region's name by default; one per
        account and region where there are several accounts); ``account``'s overrides
        apply, if the config has any."""
        self.settings = s = config.for_lane(account, region)
        name = stream or region
        self.rng = random.Random(config.seed * 1_000_003 + zlib.crc32(name.encode()))
        self.copy_bucket = self.read_bucket = None
        if s.copy_rate is not None:
            self.copy_bucket = TokenBucket(
                s.copy_rate, s.copy_burst or max(1.0, s.copy_rate), clock
            )
        if s.read_rate is not None:
            self.read_bucket = TokenBucket(
                s.read_rate, s.read_burst or max(1.0, s.read_rate), clock
            )

    def latency(self) -> float:
        """Seconds to wait before answering: ``latency_ms`` plus or minus the jitter."""
        s = self.settings
        if not s.latency_ms and not s.latency_jitter_ms:
            return 0.0
        jitter = self.rng.uniform(-s.latency_jitter_ms, s.latency_jitter_ms)
        return max(0.0, s.latency_ms + jitter) / 1000

    def admit(self, *, mutating: bool) -> bool:
        """Whether the request passes its token bucket (always, without a limit)."""
        bucket = self.copy_bucket if mutating else self.read_bucket
        return bucket is None or bucket.take()

    def applies_to(self, action: str) -> bool:
        """Whether error, drop and hang faults apply to ``action``."""
        return self.settings.actions is None or action in self.settings.actions

    def roll(self, rate: float) -> bool:
        """True with probability ``rate``; draws nothing when the rate is 0."""
        return rate > 0 and self.rng.random() < rate
