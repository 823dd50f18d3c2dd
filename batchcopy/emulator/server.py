"""The emulator's HTTP face: Lightsail's JSON 1.1 wire protocol and the control API.

``POST /`` with ``X-Amz-Target: Lightsail_20161128.<Operation>`` runs an operation in the
region named by the SigV4 credential scope of the ``Authorization`` header (the signature
itself is not checked, and never logged). STS's GetCallerIdentity (query protocol, signed
for ``sts``) is answered too, at the same URL, where ``batchcopy doctor --endpoint-url``
asks it. Requests pass the region's faults in this order:
latency, throttle, 500 error, drop before, the operation itself, drop after, hang.

The control API lives under ``/_emulator/``: ``POST reset``, ``GET``/``POST config``,
``GET stats`` and ``POST seed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aiohttp.http_exceptions
from aiohttp import web

from batchcopy.emulator.faults import FaultConfig, RegionFaults
from batchcopy.emulator.seed import load_seed
from batchcopy.emulator.sim import ACCOUNT_ID, ApiError, Lightsail

__all__ = ["Emulator", "Stats", "create_app", "host_port", "running_emulator"]

log = logging.getLogger(__name__)

TARGET_PREFIX = "Lightsail_20161128."
CONTENT_TYPE = "application/x-amz-json-1.1"
_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")
_CALLER_IDENTITY = f"""<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::{ACCOUNT_ID}:user/emulator</Arn>
    <UserId>AIDAEMULATOREXAMPLE</UserId>
    <Account>{ACCOUNT_ID}</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>{{request_id}}</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>
"""

Handler = Callable[[str, dict[str, Any]], dict[str, Any]]


@dataclass(slots=True)
class Stats:
    """What the server saw: requests by region, action and outcome; copies per target."""

    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    copies_accepted: Counter[str] = field(default_factory=Counter)
    in_flight: Counter[str] = field(default_factory=Counter)
    peak_in_flight: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        requests: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
        for (region, action, outcome), count in sorted(self.requests.items()):
            requests[region][action][outcome] = count
        return {
            "requests": requests,
            "requests_total": sum(self.requests.values()),
            "copies_accepted": dict(sorted(self.copies_accepted.items())),
            "peak_in_flight": dict(sorted(self.peak_in_flight.items())),
        }


class Emulator:
    """One emulated Lightsail account: simulation state, faults and counters.

    ``seed`` is seed data (see :mod:`batchcopy.emulator.seed`) and ``faults`` the fault
    settings; both are what :meth:`reset` returns to. ``clock`` (epoch seconds) drives the
    simulation and ``monotonic`` the throttling buckets.
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
        self._input_shapes = _input_shapes()
        self.reset()

    def __repr__(self) -> str:
        return f"<Emulator {self.sim!r} requests={sum(self.stats.requests.values())}>"

    def reset(self) -> None:
        """Back to the seed data and the starting fault settings, with counters at zero."""
        self.sim = Lightsail(clock=self._clock)
        if self._seed is not None:
            load_seed(self.sim, self._seed)
        self.stats = Stats()
        self.configure(self._initial_faults)

    def configure(self, faults: FaultConfig) -> None:
        """Apply new fault settings: buckets refill and random draws start over."""
        self.faults = faults
        self.sim.page_size = faults.page_size
        self._region_faults = {
            r: RegionFaults(r, faults, self._monotonic) for r in self.sim.regions
        }

    def add_seed(self, data: Any) -> None:
        """Add more seed data to the current state."""
        load_seed(self.sim, data)

    # -- one request --------------------------------------------------------------------------

    async def _sts(self, request: web.Request, region: str) -> web.Response:
        """STS GetCallerIdentity, the one STS call batchcopy makes (``doctor``)."""
        form = await request.post()
        if form.get("Action") != "GetCallerIdentity":
            self.stats.requests[region, "sts", "client_error"] += 1
            error = (
                "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code>"
                "<Message>The emulator answers only GetCallerIdentity of STS.</Message>"
                "</Error></ErrorResponse>"
            )
            return web.Response(status=400, text=error, content_type="text/xml")
        self.stats.requests[region, "GetCallerIdentity", "ok"] += 1
        body = _CALLER_IDENTITY.format(request_id=uuid.uuid4())
        return web.Response(text=body, content_type="text/xml")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target", "")
        action = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        match = _SCOPE.search(request.headers.get("Authorization", ""))
        region = match.group(1) if match else "unknown"
        if match and match.group(2) == "sts" and not target:
            return await self._sts(request, region)
        if action not in _OPERATIONS:
            self.stats.requests[region, action or "unknown", "client_error"] += 1
            shown = action or target or "(no X-Amz-Target)"
            return _error(400, "UnknownOperationException", f"Operation {shown} is not supported.")
        try:
            params = self._parse(region, action, await _body(request))
        except ApiError as exc:
            self.stats.requests[region, action, "client_error"] += 1
            return _error(exc.status, exc.code, exc.message)

        faults = self._region_faults[region]
        mutating = _OPERATIONS[action][1]
        in_flight = self.stats.in_flight
        in_flight[region] += 1
        self.stats.peak_in_flight[region] = max(
            self.stats.peak_in_flight[region], in_flight[region]
        )
        try:
            outcome, response = await self._run(request, faults, region, action, params, mutating)
        finally:
            in_flight[region] -= 1
        self.stats.requests[region, action, outcome] += 1
        return response

    def _parse(self, region: str, action: str, raw: bytes) -> dict[str, Any]:
        if region == "unknown":
            raise ApiError(
                "MissingAuthenticationTokenException", "Missing Authentication Token", 403
            )
        if region not in self.sim.regions:
            raise ApiError("InvalidInputException", f"{region!r} is not a Lightsail region.")
        try:
            params = json.loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise ApiError(
                "SerializationException", "The request body is not valid JSON."
            ) from None
        if not isinstance(params, dict):
            raise ApiError("SerializationException", "The request body must be a JSON object.")
        _check(params, self._input_shapes[action], "")
        return params

    async def _run(
        self,
        request: web.Request,
        faults: RegionFaults,
        region: str,
        action: str,
        params: dict[str, Any],
        mutating: bool,
    ) -> tuple[str, web.StreamResponse]:
        settings = faults.settings
        if delay := faults.latency():
            await asyncio.sleep(delay)
        if not faults.admit(mutating=mutating):
            if settings.throttle_status == 429:
                return "throttled", _error(429, "TooManyRequestsException", "Too Many Requests")
            return "throttled", _error(400, "ThrottlingException", "Rate exceeded")
        faulty = faults.applies_to(action)
        if faulty and faults.roll(settings.error_rate):
            return "error", _error(500, "ServiceException", "Internal error. Try again.")
        if faulty and faults.roll(settings.drop_before_rate):
            return "dropped", _drop(request)
        try:
            body = self._call(faults, region, action, params)
        except ApiError as exc:
            return "client_error", _error(exc.status, exc.code, exc.message)
        if faulty and faults.roll(settings.drop_after_rate):
            return "dropped", _drop(request)
        if faulty and faults.roll(settings.hang_rate):
            await asyncio.sleep(settings.hang_seconds)
        return "ok", _json(200, body)

    def _call(
        self, faults: RegionFaults, region: str, action: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        sim, settings = self.sim, faults.settings
        # A zero duration would make the copy finish before its own response is written.
        seconds = max(settings.operation_seconds, 1e-3)
        if action == "CopySnapshot":
            failed = faults.roll(settings.operation_failure_rate)
            body = sim.op_copy_snapshot(
                region, params, seconds=seconds, error_code="SnapshotCopyFailed" if failed else ""
            )
            self.stats.copies_accepted[f"{region}/{params['targetSnapshotName']}"] += 1
            return body
        if action == "CreateInstanceSnapshot":
            return sim.op_create_instance_snapshot(region, params, seconds=seconds)
        if action == "CreateDiskSnapshot":
            return sim.op_create_disk_snapshot(region, params, seconds=seconds)
        method: Handler = getattr(sim, _OPERATIONS[action][0])
        return method(region, params)


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


def _input_shapes() -> dict[str, Any]:
    """botocore's input shapes of the supported operations, to check requests against."""
    from botocore.loaders import create_loader
    from botocore.model import ServiceModel

    model = ServiceModel(create_loader().load_service_model("lightsail", "service-2"), "lightsail")
    return {name: model.operation_model(name).input_shape for name in _OPERATIONS}


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "boolean": bool,
    "integer": int,
    "long": int,
    "list": list,
    "structure": dict,
    "map": dict,
    "double": (int, float),
    "float": (int, float),
    "timestamp": (int, float, str),
}


def _has_type(value: Any, type_name: str) -> bool:
    if type_name in ("integer", "long") and isinstance(value, bool):
        return False
    return isinstance(value, _JSON_TYPES.get(type_name, object))


def _check(value: Any, shape: Any, path: str) -> None:
    """Required members and JSON types, as the service's request validation does."""
    if not _has_type(value, shape.type_name):
        raise ApiError(
            "SerializationException",
            f"{path or 'request'}: expected a {shape.type_name}, got {type(value).__name__}.",
        )
    if shape.type_name == "structure":
        for name in shape.required_members:
            if value.get(name) is None:
                raise ApiError("InvalidInputException", f"{path}{name} is required.")
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _check(value[name], member, f"{path}{name}.")
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            _check(item, shape.member, f"{path.rstrip('.')}[{i}].")


async def _body(request: web.Request) -> bytes:
    """The request body; one that cannot be read (bad encoding, cut short) is the client's
    fault: a 400, never a retryable 500."""
    try:
        return await request.read()
    except (aiohttp.ClientPayloadError, aiohttp.http_exceptions.HttpProcessingError) as exc:
        raise ApiError(
            "SerializationException", f"The request body cannot be read: {exc}"
        ) from None


def _json(status: int, body: Any) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        headers={"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def _error(status: int, code: str, message: str) -> web.Response:
    return _json(status, {"__type": code, "message": message})


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer, as a lost response looks to the client."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never reaches the client: the transport is closed


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
        return _error(exc.status, code, exc.reason)
    except Exception:
        log.exception("emulator bug while handling %s", request.headers.get("X-Amz-Target"))
        return _error(500, "ServiceException", "The emulator failed; see its log.")


def create_app(emulator: Emulator) -> web.Application:
    """The aiohttp application serving ``emulator``."""
    app = web.Application(middlewares=[_json_errors], client_max_size=1 << 20)

    async def reset(request: web.Request) -> web.Response:
        emulator.reset()
        return _json(200, {"ok": True})

    async def get_config(request: web.Request) -> web.Response:
        return _json(200, emulator.faults.to_json())

    async def post_config(request: web.Request) -> web.Response:
        try:
            emulator.configure(FaultConfig.from_json(await _read_json(request)))
        except ValueError as exc:
            return _json(400, {"message": f"fault settings: {exc}"})
        return _json(200, emulator.faults.to_json())

    async def get_stats(request: web.Request) -> web.Response:
        return _json(200, emulator.stats.to_json())

    async def post_seed(request: web.Request) -> web.Response:
        try:
            emulator.add_seed(await _read_json(request))
        except (ValueError, ApiError) as exc:
            return _json(400, {"message": f"seed: {exc}"})
        return _json(200, {"ok": True})

    app.router.add_post("/", emulator.handle)
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_get("/_emulator/config", get_config)
    app.router.add_post("/_emulator/config", post_config)
    app.router.add_get("/_emulator/stats", get_stats)
    app.router.add_post("/_emulator/seed", post_seed)
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
