"""The emulator's HTTP face: Lightsail's JSON 1.1 wire protocol and the control API.

``POST /`` with ``X-Amz-Target: Lightsail_20161128.<Operation>`` runs an operation in the
region named by the SigV4 credential scope of the ``Authorization`` header, in the account
its access key belongs to (the signature itself is not checked, and never logged). One URL
serves three services: STS (query protocol, signed for ``sts``: AssumeRole and
GetCallerIdentity) and Organizations (``AWSOrganizationsV20161128.*``) answer there too.
Lightsail requests pass their account's and region's faults in this order:
latency, throttle, 500 error, drop before, the operation itself, drop after, hang.

The control API lives under ``/_emulator/``: ``POST reset``, ``GET``/``POST config``,
``GET stats``, ``POST seed`` and ``POST expire-credentials``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from batchcopy.emulator import organizations, sts, wire
from batchcopy.emulator.accounts import Account, Organization, accounts_from_seed, add_to_accounts
from batchcopy.emulator.faults import FaultConfig, RegionFaults
from batchcopy.emulator.seed import load_seed
from batchcopy.emulator.sim import ApiError, Lightsail

__all__ = ["Emulator", "Stats", "create_app", "host_port", "running_emulator"]

log = logging.getLogger(__name__)

TARGET_PREFIX = "Lightsail_20161128."
# Access key id, region and service of the SigV4 credential scope.
_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request", re.ASCII)

Handler = Callable[[str, dict[str, Any]], dict[str, Any]]


@dataclass(slots=True)
class Stats:
    """What the server saw: requests by region, action and outcome; copies and deletes that
    took effect, per target; delete requests per target, whatever became of them (so a
    second delete of a snapshot already deleted shows); AssumeRole calls per account."""

    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    copies_accepted: Counter[str] = field(default_factory=Counter)
    deletes_accepted: Counter[str] = field(default_factory=Counter)
    delete_requests: Counter[str] = field(default_factory=Counter)
    in_flight: Counter[str] = field(default_factory=Counter)
    peak_in_flight: Counter[str] = field(default_factory=Counter)
    # Writes (copies, tags, deletes) open at once per region, whatever their account: what a
    # client's cap on jobs open per target region shows.
    writes_in_flight: Counter[str] = field(default_factory=Counter)
    peak_writes_in_flight: Counter[str] = field(default_factory=Counter)
    assume_role: Counter[str] = field(default_factory=Counter)
    # Who sent a lane's Lightsail requests: the batchcopy-shard/I-N of their User-Agent, or
    # its first word; so a test can see that one process alone called a lane.
    clients: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def to_json(self) -> dict[str, Any]:
        requests: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
        for (region, action, outcome), count in sorted(self.requests.items()):
            requests[region][action][outcome] = count
        return {
            "requests": requests,
            "requests_total": sum(self.requests.values()),
            "copies_accepted": dict(sorted(self.copies_accepted.items())),
            "deletes_accepted": dict(sorted(self.deletes_accepted.items())),
            "delete_requests": dict(sorted(self.delete_requests.items())),
            "peak_in_flight": dict(sorted(self.peak_in_flight.items())),
            "peak_writes_in_flight": dict(sorted(self.peak_writes_in_flight.items())),
            "assume_role": dict(sorted(self.assume_role.items())),
            "clients": {lane: sorted(seen) for lane, seen in sorted(self.clients.items())},
        }


_SHARD_TAG = re.compile(r"batchcopy-shard/\d+-\d+", re.ASCII)


def _client_of(user_agent: str) -> str:
    """Which client a User-Agent names: a shard's tag if it carries one, else its first word."""
    if tag := _SHARD_TAG.search(user_agent):
        return tag.group()
    return user_agent.split(" ", 1)[0] or "-"


class Emulator:
    """Emulated AWS accounts: their Lightsail state, faults and counters, and the STS and
    Organizations around them.

    ``seed`` is seed data (see :mod:`batchcopy.emulator.seed`, and
    :mod:`batchcopy.emulator.accounts` for several accounts) and ``faults`` the fault
    settings; both are what :meth:`reset` returns to. ``clock`` (epoch seconds) drives the
    simulation and session expiry, ``monotonic`` the throttling buckets. ``sim`` is the
    caller's account's Lightsail. Every account has its own buckets, faults and state; with
    several accounts, counters keyed by region are keyed ``"<account>/<region>"``.
    """

    def __init__(
        self,
        *,
        seed: Any = None,
        faults: FaultConfig | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seed = seed
        self._initial_faults = faults or FaultConfig()
        self._clock = clock
        self._monotonic = monotonic
        self._input_shapes = wire.input_shapes(_OPERATIONS)
        self.keys = sts.Keys(clock)
        self.reset()

    def __repr__(self) -> str:
        return (
            f"<Emulator accounts={len(self.accounts)} {self.sim!r} "
            f"requests={sum(self.stats.requests.values())}>"
        )

    def reset(self) -> None:
        """Back to the seed data and the starting fault settings, with counters at zero and
        no session keys."""
        self.faults = self._initial_faults
        self.accounts, self.caller = accounts_from_seed(self._seed, self._new_sim)
        self.multi_account = isinstance(self._seed, dict) and "accounts" in self._seed
        self.sim = self.accounts[self.caller].sim
        self.keys = sts.Keys(self._clock, issued=self.keys.issued)
        self.stats = Stats()
        self.configure(self._initial_faults)

    def configure(self, faults: FaultConfig) -> None:
        """Apply new fault settings: buckets refill and random draws start over."""
        self.faults = faults
        for account in self.accounts.values():
            account.sim.page_size = faults.page_size
        self._lane_faults: dict[str, RegionFaults] = {}

    def add_seed(self, data: Any) -> None:
        """Add more seed data to the current state (a seed with accounts adds accounts)."""
        if isinstance(data, dict) and "accounts" in data:
            add_to_accounts(self.accounts, data, self._new_sim)
            self.multi_account = True
        else:
            load_seed(self.sim, data)

    def expire_credentials(self) -> int:
        """Make every session key issued so far answer ExpiredTokenException."""
        return self.keys.expire_all()

    def _new_sim(self, account_id: str) -> Lightsail:
        return Lightsail(clock=self._clock, page_size=self.faults.page_size, account_id=account_id)

    def _lane(self, account: str, region: str) -> str:
        """How counters name a region of an account."""
        return f"{account}/{region}" if self.multi_account else region

    def _faults(self, account: str, region: str) -> RegionFaults:
        lane = self._lane(account, region)
        faults = self._lane_faults.get(lane)
        if faults is None:
            faults = RegionFaults(
                region, self.faults, self._monotonic, stream=lane, account=account
            )
            self._lane_faults[lane] = faults
        return faults

    def _account(self, key: str) -> Account:
        """The account credentials with access key id ``key`` belong to; ApiError for
        session keys that expired or are unknown."""
        session = self.keys.session(key)
        return self.accounts[session.account if session else self.caller]

    def _caller_arn(self, key: str) -> str:
        session = self.keys.session(key)
        return sts.session_arn(session) if session else f"arn:aws:iam::{self.caller}:user/emulator"

    # -- one request --------------------------------------------------------------------------

    async def _sts(self, request: web.Request, key: str, region: str) -> web.Response:
        """STS: AssumeRole, and GetCallerIdentity (which ``batchcopy doctor`` asks)."""
        form = {k: str(v) for k, v in (await request.post()).items()}
        action = form.get("Action", "")
        try:
            caller = self._account(key).id
            if action == "GetCallerIdentity":
                body = sts.caller_identity(caller, self._caller_arn(key))
            elif action == "AssumeRole":
                if role := _ROLE_ACCOUNT.search(form.get("RoleArn", "")):
                    self.stats.assume_role[role.group(1)] += 1
                self._sts_fault(caller, region, action)
                body = sts.assume_role(
                    form,
                    accounts=self.accounts,
                    caller_arn=self._caller_arn(key),
                    keys=self.keys,
                    now=self._clock(),
                )
            else:
                raise ApiError(
                    "InvalidAction", "The emulator answers AssumeRole and GetCallerIdentity."
                )
        except ApiError as exc:
            self.stats.requests[region, action or "sts", "client_error"] += 1
            return web.Response(status=exc.status, text=sts.xml_error(exc), content_type="text/xml")
        self.stats.requests[region, action, "ok"] += 1
        return web.Response(text=body, content_type="text/xml")

    def _sts_fault(self, caller: str, region: str, action: str) -> None:
        """STS's own faults, when the settings' ``actions`` name its operation: a throttle
        (the caller's read bucket) and ``error_rate`` as a 503, as STS answers them."""
        faults = self._faults(caller, region)
        if faults.settings.actions is None or action not in faults.settings.actions:
            return
        if not faults.admit(mutating=False):
            raise ApiError("Throttling", "Rate exceeded", 400)
        if faults.roll(faults.settings.error_rate):
            raise ApiError("ServiceUnavailable", "Service unavailable; try again", 503)

    async def _organizations(
        self, request: web.Request, key: str, region: str, action: str
    ) -> web.Response:
        try:
            if action not in organizations.OPERATIONS:
                raise ApiError("UnknownOperationException", f"Operation {action} is not supported.")
            caller = self._account(key).id
            params = wire.json_object(await wire.body(request))
            org = Organization(self.caller, self.accounts) if self.multi_account else None
            body = organizations.answer(
                org,
                action,
                params,
                caller=caller,
                page_size=self.faults.page_size,
                empty_pages=self.faults.empty_pages,
            )
        except ApiError as exc:
            self.stats.requests[region, action or "organizations", "client_error"] += 1
            return wire.error(exc.status, exc.code, exc.message)
        self.stats.requests[region, action, "ok"] += 1
        return wire.respond(200, body)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target", "")
        match = _SCOPE.search(request.headers.get("Authorization", ""))
        key, region, service = match.groups() if match else ("", "unknown", "")
        if service == "sts" and not target:
            return await self._sts(request, key, region)
        if target.startswith(organizations.TARGET_PREFIX):
            action = target[len(organizations.TARGET_PREFIX) :]
            return await self._organizations(request, key, region, action)
        action = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        if action not in _OPERATIONS:
            self.stats.requests[region, action or "unknown", "client_error"] += 1
            shown = action or target or "(no X-Amz-Target)"
            return wire.error(
                400, "UnknownOperationException", f"Operation {shown} is not supported."
            )
        try:
            params = self._parse(region, action, await wire.body(request))
            account = self._account(key)
        except ApiError as exc:
            self.stats.requests[region, action, "client_error"] += 1
            return wire.error(exc.status, exc.code, exc.message)

        faults = self._faults(account.id, region)
        lane = self._lane(account.id, region)
        if name := _DELETED.get(action):
            # Before any fault: a throttled or dropped delete was still sent.
            self.stats.delete_requests[f"{lane}/{params[name]}"] += 1
        stats = self.stats
        stats.clients[lane].add(_client_of(request.headers.get("User-Agent", "")))
        in_flight, writes = stats.in_flight, stats.writes_in_flight
        in_flight[lane] += 1
        stats.peak_in_flight[lane] = max(stats.peak_in_flight[lane], in_flight[lane])
        write = action in _OPERATIONS and _OPERATIONS[action][1]
        if write:
            writes[region] += 1
            stats.peak_writes_in_flight[region] = max(
                stats.peak_writes_in_flight[region], writes[region]
            )
        try:
            outcome, response = await self._run(request, faults, account, region, action, params)
        finally:
            in_flight[lane] -= 1
            if write:
                writes[region] -= 1
        self.stats.requests[region, action, outcome] += 1
        return response

    def _parse(self, region: str, action: str, raw: bytes) -> dict[str, Any]:
        if region == "unknown":
            raise ApiError(
                "MissingAuthenticationTokenException", "Missing Authentication Token", 403
            )
        if region not in self.sim.regions:
            raise ApiError("InvalidInputException", f"{region!r} is not a Lightsail region.")
        params = wire.json_object(raw)
        wire.check(params, self._input_shapes[action], "")
        return params

    async def _run(
        self,
        request: web.Request,
        faults: RegionFaults,
        account: Account,
        region: str,
        action: str,
        params: dict[str, Any],
    ) -> tuple[str, web.StreamResponse]:
        settings = faults.settings
        if delay := faults.latency():
            await asyncio.sleep(delay)
        if not faults.admit(mutating=_OPERATIONS[action][1]):
            if settings.throttle_status == 429:
                return "throttled", wire.error(429, "TooManyRequestsException", "Too Many Requests")
            return "throttled", wire.error(400, "ThrottlingException", "Rate exceeded")
        faulty = faults.applies_to(action)
        if faulty and faults.roll(settings.error_rate):
            return "error", wire.error(500, "ServiceException", "Internal error. Try again.")
        if faulty and faults.roll(settings.drop_before_rate):
            return "dropped", wire.drop(request)
        try:
            body = self._call(faults, account, region, action, params)
        except ApiError as exc:
            return "client_error", wire.error(exc.status, exc.code, exc.message)
        if faulty and faults.roll(settings.drop_after_rate):
            return "dropped", wire.drop(request)
        if faulty and faults.roll(settings.hang_rate):
            await asyncio.sleep(settings.hang_seconds)
        return "ok", wire.respond(200, body)

    def _call(
        self,
        faults: RegionFaults,
        account: Account,
        region: str,
        action: str,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        sim, settings = account.sim, faults.settings
        # A zero duration would make the copy finish before its own response is written.
        seconds = max(settings.operation_seconds, 1e-3)
        if action == "CopySnapshot":
            failed = faults.roll(settings.operation_failure_rate)
            body = sim.op_copy_snapshot(
                region, params, seconds=seconds, error_code="SnapshotCopyFailed" if failed else ""
            )
            lane = self._lane(account.id, region)
            self.stats.copies_accepted[f"{lane}/{params['targetSnapshotName']}"] += 1
            return body
        if action == "CreateInstanceSnapshot":
            return sim.op_create_instance_snapshot(region, params, seconds=seconds)
        if action == "CreateDiskSnapshot":
            return sim.op_create_disk_snapshot(region, params, seconds=seconds)
        method: Handler = getattr(sim, _OPERATIONS[action][0])
        body = method(region, params)
        if name := _DELETED.get(action):
            # Counted once it took effect: a lost answer after this still counts.
            lane = self._lane(account.id, region)
            self.stats.deletes_accepted[f"{lane}/{params[name]}"] += 1
        return body


_ROLE_ACCOUNT = re.compile(r":iam::(\d{12}):role/", re.ASCII)
# Delete operations -> the parameter naming what they delete (for deletes_accepted).
_DELETED = {
    "DeleteInstanceSnapshot": "instanceSnapshotName",
    "DeleteDiskSnapshot": "diskSnapshotName",
}


# Operation name -> (simulation method, whether it mutates and so uses the copy bucket).
_OPERATIONS: dict[str, tuple[str, bool]] = {
    "CopySnapshot": ("op_copy_snapshot", True),
    "CreateInstanceSnapshot": ("op_create_instance_snapshot", True),
    "CreateDiskSnapshot": ("op_create_disk_snapshot", True),
    "DeleteInstanceSnapshot": ("op_delete_instance_snapshot", True),
    "DeleteDiskSnapshot": ("op_delete_disk_snapshot", True),
    "TagResource": ("op_tag_resource", True),
    "GetOperation": ("op_get_operation", False),
    "GetOperations": ("op_get_operations", False),
    "GetInstanceSnapshot": ("op_get_instance_snapshot", False),
    "GetInstanceSnapshots": ("op_get_instance_snapshots", False),
    "GetDiskSnapshot": ("op_get_disk_snapshot", False),
    "GetDiskSnapshots": ("op_get_disk_snapshots", False),
    "GetAutoSnapshots": ("op_get_auto_snapshots", False),
    "GetInstances": ("op_get_instances", False),
    "GetDisks": ("op_get_disks", False),
    "GetRegions": ("op_get_regions", False),
}


# -- the aiohttp application ---------------------------------------------------------------


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure answers in the protocol's JSON, never as a traceback or an HTML page."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        code = "UnknownOperationException" if exc.status == 404 else "InvalidInputException"
        if exc.status >= 500:
            code = "ServiceException"
        return wire.error(exc.status, code, exc.reason)
    except Exception:
        log.exception("emulator bug while handling %s", request.headers.get("X-Amz-Target"))
        return wire.error(500, "ServiceException", "The emulator failed; see its log.")


def create_app(emulator: Emulator) -> web.Application:
    """The aiohttp application serving ``emulator``."""
    app = web.Application(middlewares=[_json_errors], client_max_size=1 << 20)

    async def reset(request: web.Request) -> web.Response:
        emulator.reset()
        return wire.respond(200, {"ok": True})

    async def expire_credentials(request: web.Request) -> web.Response:
        return wire.respond(200, {"expired": emulator.expire_credentials()})

    async def get_config(request: web.Request) -> web.Response:
        return wire.respond(200, emulator.faults.to_json())

    async def post_config(request: web.Request) -> web.Response:
        try:
            emulator.configure(FaultConfig.from_json(await _read_json(request)))
        except ValueError as exc:
            return wire.respond(400, {"message": f"fault settings: {exc}"})
        return wire.respond(200, emulator.faults.to_json())

    async def get_stats(request: web.Request) -> web.Response:
        return wire.respond(200, emulator.stats.to_json())

    async def post_seed(request: web.Request) -> web.Response:
        try:
            emulator.add_seed(await _read_json(request))
        except (ValueError, ApiError) as exc:
            return wire.respond(400, {"message": f"seed: {exc}"})
        return wire.respond(200, {"ok": True})

    app.router.add_post("/", emulator.handle)
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_get("/_emulator/config", get_config)
    app.router.add_post("/_emulator/config", post_config)
    app.router.add_get("/_emulator/stats", get_stats)
    app.router.add_post("/_emulator/seed", post_seed)
    app.router.add_post("/_emulator/expire-credentials", expire_credentials)
    return app


async def _read_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


@contextlib.asynccontextmanager
async def running_emulator(
    emulator: Emulator | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``emulator`` (a fresh, empty one by default) in this event loop; yield its URL.

    The port is a free one unless given. asyncio only, as aiohttp is.
    """
    runner = web.AppRunner(
        create_app(emulator or Emulator()), access_log=None, shutdown_timeout=0.5
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()  # a failed bind still cleans up
        sockname = runner.addresses[0]
        yield f"http://{host_port(host, sockname[1])}"
    finally:
        await runner.cleanup()


def host_port(host: str, port: int) -> str:
    """``host:port`` as a URL writes it: an IPv6 address goes in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
