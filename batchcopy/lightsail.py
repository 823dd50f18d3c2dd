"""Lightsail through aiobotocore: one client per region, and AWS errors translated once.

This is the only module that imports aiobotocore. Clients are built with
``total_max_attempts=1`` so that retry.py is the only retry layer (stacked retries multiply:
5 tries here times 4 there would be 20 requests for one call). Every botocore error leaves
this module as a :class:`~batchcopy.errors.LightsailError` (or a
:class:`~batchcopy.errors.CredentialsError`, which ends the run). STS is called here too, once,
for :func:`caller_identity`.
"""

from __future__ import annotations

import functools
import logging
import math
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

import anyio
from aiobotocore.config import AioConfig
from botocore import exceptions as boto
from botocore.utils import parse_timestamp

from batchcopy.errors import (
    EndpointUnreachableError,
    OperationFailedError,
    PermanentError,
    SettingsError,
    ThrottledError,
    TransientError,
    ungrouped,
)
from batchcopy.facts import is_valid_date
from batchcopy.jobs import AutoSnapshots, CopyJob, SnapshotInfo
from batchcopy.retry import Guard
from batchcopy.sessions import (
    NoRedirects,
    RoleCredentials,
    Sessions,
    caller_identity,
    sign_as_account,
    signing_as,
    stop_signing_as,
    sts_endpoint,
)
from batchcopy.settings import Settings
from batchcopy.translate import (
    MALFORMED_ANSWER,
    PARSER_CHOKED,
    malformed,
    printable,
    refused,
    translate_error,
)

__all__ = [
    "MALFORMED_ANSWER",
    "PROBE_ACTION",
    "CallWatcher",
    "LightsailClients",
    "caller_identity",
    "printable",
    "sts_endpoint",
    "translate_error",
]

log = logging.getLogger(__name__)

Response = dict[str, Any]
# The read LightsailClients.probe makes; its permission is the one a doctor check proves.
PROBE_ACTION = "GetInstanceSnapshots"

# Calls that change something: a malformed answer leaves their outcome unknown.
_WRITES = frozenset(
    {"copy_snapshot", "tag_resource", "delete_instance_snapshot", "delete_disk_snapshot"}
)
# A listing that hands out page after page with nothing new on them (a new token each time)
# is going round in circles: it is stopped after this many such pages in a row, and any
# listing after this many pages (far beyond any real account's: a region holds thousands
# of snapshots, not millions).
_STALE_PAGES = 3
_MAX_PAGES = 20_000
# Lightsail opened in November 2016: a creation time before 2016 (0, 1970) says nothing.
_EARLIEST = 1_451_606_400.0

_KINDS = (
    ("instance", "get_instance_snapshot", "instanceSnapshotName", "instanceSnapshot"),
    ("disk", "get_disk_snapshot", "diskSnapshotName", "diskSnapshot"),
)
# kind -> (client method, its name parameter, the action) of a delete.
_DELETES = {
    "instance": ("delete_instance_snapshot", "instanceSnapshotName", "DeleteInstanceSnapshot"),
    "disk": ("delete_disk_snapshot", "diskSnapshotName", "DeleteDiskSnapshot"),
}
_LISTINGS = (
    ("instance", "get_instance_snapshots", "instanceSnapshots"),
    ("disk", "get_disk_snapshots", "diskSnapshots"),
)


# The service refused the keys as expired (or no longer valid) before doing anything: an
# assumed role's keys are renewed and the call sent once more.
_EXPIRED = frozenset({"ExpiredTokenException", "ExpiredToken", "UnrecognizedClientException"})
_RENEWALS = 3  # keys renewed for one call at most: expiries in a row, then the error stands


class CallWatcher(Protocol):
    """Told of each request as it is sent, and of each the service throttles, with its
    region and action (:class:`batchcopy.timeline.Timeline` is one)."""

    def on_call(self, region: str, action: str) -> None: ...

    def on_throttle(self, region: str, action: str) -> None: ...


@dataclass(slots=True)
class _Shared:
    """What the clients of every account of a run share: the sessions, and one client per
    region (a call is signed as its account's: see :func:`batchcopy.sessions.signing_as`)."""

    sessions: Sessions
    config: AioConfig
    deadline: float  # seconds a call may take as a whole
    clients: dict[str, Any] = field(default_factory=dict)  # region -> client
    # Endpoints that have answered a call (an error answer counts): a refused connection
    # to one of them is a passing fault, to any other a wrong address.
    answered: set[str] = field(default_factory=set)
    accounts: dict[str, LightsailClients] = field(default_factory=dict)
    # Requests the service throttled, by action (CopySnapshot, TagResource, GetOperation...):
    # reads, tags and deletes spend budgets of their own, and the report says which.
    throttled: Counter[str] = field(default_factory=Counter)
    watchers: list[CallWatcher] = field(default_factory=list)


class LightsailClients:
    """Lightsail in one account, a client per region opened on first use.

    ``async with LightsailClients(settings) as api:`` gives the base credentials' (aiobotocore's
    normal chain: profile, environment, shared config, SSO, unless the settings give keys);
    ``await api.account(id)`` another account's, its role assumed once
    (:class:`batchcopy.sessions.Sessions`). Accounts share the clients: a region's one client
    signs each call with the keys of the account it is made for, so a run over hundreds of
    accounts holds a client per region, not per account and region. Every error is a
    batchcopy error. The clients close when the ``async with`` block ends.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        account: str = "",
        shared: _Shared | None = None,
        credentials: RoleCredentials | None = None,
    ) -> None:
        self._settings = settings
        self.account_id = account
        self._shared = shared or _Shared(
            sessions=Sessions(settings),
            config=AioConfig(
                retries={"mode": "standard", "total_max_attempts": 1},
                max_pool_connections=max(10, settings.max_in_flight * 2),
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                http_session_cls=NoRedirects,
                user_agent_extra=settings.user_agent_extra or None,
            ),
            deadline=settings.connect_timeout + 2 * settings.read_timeout,
        )
        self._credentials = credentials

    def __repr__(self) -> str:
        account = self.account_id or "base"
        return f"<LightsailClients account={account} regions={sorted(self._shared.clients)}>"

    async def __aenter__(self) -> LightsailClients:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        shared = self._shared
        with anyio.CancelScope(shield=True):
            while shared.clients:
                await shared.clients.popitem()[1].close()
            await shared.sessions.close()

    async def account(self, account: str) -> LightsailClients:
        """Lightsail in ``account`` ("" for the base credentials). ``PermanentError`` with
        code ``AssumeRoleFailed`` when its role cannot be assumed."""
        if account == self.account_id:
            return self
        shared = self._shared
        clients = shared.accounts.get(account)
        if clients is None:
            credentials = await shared.sessions.reach(account)
            clients = shared.accounts.setdefault(
                account,
                LightsailClients(
                    self._settings, account=account, shared=shared, credentials=credentials
                ),
            )
        return clients

    @property
    def throttled(self) -> dict[str, int]:
        """Requests the service throttled so far, by action, over every account."""
        return dict(sorted(self._shared.throttled.items()))

    def watch(self, watcher: CallWatcher) -> None:
        """Tell ``watcher`` of every request sent and throttled from now on, in every
        account (the run's time series counts them per region)."""
        self._shared.watchers.append(watcher)

    @property
    def role_assumed(self) -> bool:
        """Whether this account's calls are signed with an assumed role's keys."""
        return self._credentials is not None

    async def identity(self) -> dict[str, str]:
        """The ``account`` and ``arn`` this account's calls are made as (GetCallerIdentity)."""
        base = self._shared.sessions.base
        return await caller_identity(self._settings, base, credentials=self._credentials)

    async def _client(self, region: str) -> Any:
        clients = self._shared.clients
        client = clients.get(region)
        if client is None:
            session = self._shared.sessions.base
            # Before the client is made: its parser takes the factory's defaults then.
            factory = session.get_component("response_parser_factory")
            factory.set_parser_defaults(timestamp_parser=_parse_time)
            kwargs: dict[str, Any] = {"region_name": region, "config": self._shared.config}
            if self._settings.endpoint_url:
                kwargs["endpoint_url"] = self._settings.endpoint_url
            try:
                client = await session.create_client("lightsail", **kwargs).__aenter__()
            except ValueError as exc:  # botocore's word for a malformed endpoint or region
                raise SettingsError(f"cannot make a Lightsail client for {region}: {exc}") from None
            except Exception as exc:
                raise translate_error(exc) from exc
            if region in clients:  # made meanwhile by another task: keep one
                await client.close()
                return clients[region]
            client.meta.events.register("before-sign.lightsail", sign_as_account)
            clients[region] = client
        return client

    async def _call(self, region: str, method: str, **params: Any) -> dict[str, Any]:
        credentials = self._credentials
        for renewals in range(_RENEWALS + 1):
            refused_key = credentials.key_in_use if credentials is not None else None
            try:
                return await self._send(region, method, params)
            except PermanentError as exc:
                if credentials is None or exc.code not in _EXPIRED or renewals == _RENEWALS:
                    raise
                log.info(
                    "%s: keys refused (%s); assuming the role again", self.account_id, exc.code
                )
            # Refused before anything was done: sending again cannot duplicate. Another call
            # may have renewed the keys meanwhile; then they are not renewed twice.
            await credentials.renew(refused_key)
        raise AssertionError("unreachable: the last renewal's refusal is raised")

    async def _send(self, region: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        client = await self._client(region)
        endpoint = str(client.meta.endpoint_url)
        answered = self._shared.answered
        signing = signing_as(self._credentials)
        action = client.meta.method_to_api_mapping.get(method, method)
        for watcher in self._shared.watchers:
            watcher.on_call(region, action)
        try:
            # botocore's read timeout is per read: an answer trickling a byte at a time
            # never trips it. A call as a whole gets connect + two reads' time.
            with anyio.fail_after(self._shared.deadline):
                response: dict[str, Any] = await getattr(client, method)(**params)
        except PARSER_CHOKED as exc:
            answered.add(endpoint)
            raise malformed(method, "answer", ambiguous=method in _WRITES) from exc
        except Exception as exc:
            if isinstance(exc, boto.ClientError):
                answered.add(endpoint)
            elif endpoint not in answered and refused(exc):
                # Retrying a wrong address would only delay saying so by the whole deadline.
                raise EndpointUnreachableError(endpoint) from exc
            error = translate_error(exc)
            if isinstance(error, ThrottledError):
                self._shared.throttled[action] += 1
                for watcher in self._shared.watchers:
                    watcher.on_throttle(region, action)
            raise error from exc
        finally:
            stop_signing_as(signing)
        answered.add(endpoint)
        return response

    async def copy_snapshot(self, job: CopyJob) -> str:
        """Send one CopySnapshot (to the target region); return the operation id.
        :class:`OperationFailedError` when Lightsail answers with an operation that failed."""
        response = await self._call(job.target_region, "copy_snapshot", **job.copy_request())
        return _operation_id(response, "CopySnapshot", "the copy")

    async def delete_snapshot(self, region: str, name: str, kind: str) -> str | None:
        """Send one DeleteInstanceSnapshot or DeleteDiskSnapshot (``kind`` "instance" or
        "disk") for the manual snapshot ``name`` in ``region``; return the operation id.

        None when there is no ``kind`` snapshot of that name: already gone, which is no
        failure of a delete. An answer without its operation is an ambiguous
        :class:`TransientError`: the caller looks the snapshot up before anything else,
        and never sends the delete again blindly. :class:`OperationFailedError` when the
        answer's operation failed."""
        if kind not in _DELETES:
            raise ValueError(f"kind must be 'instance' or 'disk', not {kind!r}")
        method, param, action = _DELETES[kind]
        try:
            response = await self._call(region, method, **{param: name})
        except PermanentError as exc:
            if exc.code == "NotFoundException":
                return None
            raise
        return _operation_id(response, action, "the delete")

    async def endpoint(self, region: str) -> str:
        """The URL calls to ``region`` go to, as botocore resolved it."""
        client = await self._client(region)
        return str(client.meta.endpoint_url)

    async def probe(self, region: str) -> None:
        """One cheap read in ``region``, the first page of :data:`PROBE_ACTION`: the
        endpoint answers and the identity may list snapshots, as a run does. The items are
        read as a run reads them: a page a run would refuse is no OK."""
        items, _ = await self._page(region, "get_instance_snapshots", "instanceSnapshots", None)
        for item in items:
            _snapshot_info(region, "instance", item)

    async def get_operation(self, region: str, operation_id: str) -> dict[str, str]:
        """An operation's status, errorCode and errorDetails (empty strings when absent)."""
        response = await self._call(region, "get_operation", operationId=operation_id)
        operation = _field(response, "operation", dict, "GetOperation")
        if not isinstance(operation.get("status"), str):
            raise malformed("GetOperation", "operation.status")
        return {
            k: printable(str(operation.get(k) or ""))
            for k in ("status", "errorCode", "errorDetails")
        }

    async def find_snapshot(
        self, region: str, name: str, kind: str | None = None
    ) -> SnapshotInfo | None:
        """The manual snapshot called ``name`` in ``region``, instance or disk (or only of
        ``kind``), or None."""
        for of_kind, method, param, key in _KINDS:
            if kind is not None and of_kind != kind:
                continue
            try:
                response = await self._call(region, method, **{param: name})
            except PermanentError as exc:
                if exc.code == "NotFoundException":
                    continue
                raise
            return _snapshot_info(region, of_kind, _field(response, key, dict, method))
        return None

    async def list_snapshots(self, region: str, guard: Guard) -> AsyncIterator[SnapshotInfo]:
        """Every manual snapshot in ``region``; ``guard`` wraps each page call (the caller's
        retry policy), so a throttled page is retried, not the whole listing. Instance and
        disk snapshots are listed at once, a round trip sooner than one after the other:
        every one of both is known before the first is given (a copy run decides on them)."""
        listed: dict[str, list[SnapshotInfo]] = {kind: [] for kind, _, _ in _LISTINGS}

        async def list_kind(kind: str, method: str, key: str) -> None:
            async for item in self._items(region, method, key, guard):
                listed[kind].append(_snapshot_info(region, kind, item))

        with ungrouped():  # the first listing to fail ends the other, and comes out as itself
            async with anyio.create_task_group() as tg:
                for listing in _LISTINGS:
                    tg.start_soon(list_kind, *listing)
        for infos in listed.values():
            for info in infos:
                yield info

    async def list_snapshot_items(
        self, region: str, guard: Guard, kinds: tuple[str, ...] = ("instance", "disk")
    ) -> AsyncIterator[tuple[SnapshotInfo, dict[str, str]]]:
        """Every manual snapshot of ``kinds`` in ``region`` with its tags, page by page;
        ``guard`` wraps each page call, as in :meth:`list_snapshots`."""
        for kind, method, key in _LISTINGS:
            if kind in kinds:
                async for item in self._items(region, method, key, guard):
                    yield _snapshot_info(region, kind, item), self._tag_dict(item, method)

    async def list_resources(
        self, region: str, guard: Guard, kinds: tuple[str, ...] = ("instance", "disk")
    ) -> AsyncIterator[tuple[str, str, dict[str, str]]]:
        """Every instance and disk (of ``kinds``) in ``region`` as (name, kind, tags), page
        by page; ``guard`` wraps each page call."""
        for kind, method, key in (
            ("instance", "get_instances", "instances"),
            ("disk", "get_disks", "disks"),
        ):
            if kind in kinds:
                async for item in self._items(region, method, key, guard):
                    name = item.get("name")
                    if not isinstance(name, str) or not name:
                        raise malformed(method, f"{key}[].name")
                    yield name, kind, self._tag_dict(item, method)

    async def auto_snapshots(self, region: str, resource: str) -> AutoSnapshots | None:
        """An instance's or disk's automatic snapshots; None when there is no such resource."""
        try:
            response = await self._call(region, "get_auto_snapshots", resourceName=resource)
        except PermanentError as exc:
            if exc.code == "NotFoundException":
                return None
            raise
        autos = _field(response, "autoSnapshots", list, "GetAutoSnapshots")
        if not all(
            isinstance(a, dict) and isinstance(a.get("date"), str) and is_valid_date(a["date"])
            for a in autos
        ):
            raise malformed("GetAutoSnapshots", "autoSnapshots[].date (YYYY-MM-DD)")
        return AutoSnapshots(
            kind="disk" if response.get("resourceType") == "Disk" else "instance",
            statuses={a["date"]: str(a.get("status", "")) for a in autos},
            created={
                a["date"]: _epoch(
                    a.get("createdAt"), "GetAutoSnapshots", "autoSnapshots[].createdAt"
                )
                for a in autos
            },
        )

    async def tag_resource(self, region: str, name: str, tags: dict[str, str]) -> None:
        """Put ``tags`` on the resource called ``name`` (existing keys are overwritten)."""
        wire = [{"key": k, "value": v} for k, v in tags.items()]
        response = await self._call(region, "tag_resource", resourceName=name, tags=wire)
        # Tagging is idempotent: an answer without the operation is retried, and never
        # taken for tags that are on.
        _operation(response, "TagResource")

    async def _items(
        self, region: str, method: str, key: str, guard: Guard
    ) -> AsyncIterator[dict[str, Any]]:
        """The items of a paginated ``Get*s`` listing; one guarded call per page."""
        token: str | None = None
        seen: set[str] = set()
        names: set[str] = set()  # a region's snapshot names: small next to the snapshots
        stale = 0  # pages in a row that listed nothing new
        for _ in range(_MAX_PAGES):
            items, token = await guard(functools.partial(self._page, region, method, key, token))
            new = [item for item in items if str(item.get("name")) not in names]
            names.update(str(item.get("name")) for item in new)
            stale = 0 if new else stale + 1
            if stale >= _STALE_PAGES:
                raise _endless(method, region, f"{stale} pages in a row listed nothing new")
            for item in new:
                yield item
            if not token:
                return
            if token in seen:  # a service that hands the same page out again: never ends
                raise _endless(method, region, "it gave a page token it had given already")
            seen.add(token)
        raise _endless(method, region, f"it was still going after {_MAX_PAGES} pages")

    async def _page(
        self, region: str, method: str, key: str, token: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a listing: its items and the next page's token, as promised. A page
        that is not a listing (HTML, an empty body, another shape) is never "no items"."""
        response = await self._call(region, method, **({"pageToken": token} if token else {}))
        items = _field(response, key, list, method)
        if not all(isinstance(item, dict) for item in items):
            raise malformed(method, f"{key}[]")
        following = response.get("nextPageToken")
        if following is not None and not isinstance(following, str):
            raise malformed(method, "nextPageToken")
        return items, following or None

    @staticmethod
    def _tag_dict(item: dict[str, Any], action: str) -> dict[str, str]:
        """A resource's tags as key -> value (a tag without a value has "")."""
        tags = item.get("tags") or []
        if not isinstance(tags, list) or not all(
            isinstance(t, dict) and isinstance(t.get("key"), str) for t in tags
        ):
            raise malformed(action, f"tags[].key (in {printable(str(item.get('name')))})")
        return {t["key"]: str(t.get("value") or "") for t in tags}


def _operation(response: dict[str, Any], action: str) -> dict[str, Any]:
    """The first operation of a write's answer; an answer without one (with an id) leaves
    the write's outcome unknown: :func:`malformed`, ambiguous."""
    operations = _field(response, "operations", list, action, ambiguous=True)
    first = operations[0] if operations else None
    if not isinstance(first, dict) or not isinstance(first.get("id"), str) or not first["id"]:
        # Not the answer of a write that was done, nor a refusal: it may or may not have
        # been. A copy's target is looked up before anything else is decided.
        raise malformed(action, "operations[0].id", ambiguous=True)
    return first


def _operation_id(response: dict[str, Any], action: str, what: str) -> str:
    """The id of a write's operation (see :func:`_operation`); :class:`OperationFailedError`
    when Lightsail answered ``what`` with an operation that failed."""
    first = _operation(response, action)
    if first.get("status") == "Failed":
        code = printable(str(first.get("errorCode") or "OperationFailed"))
        details = printable(str(first.get("errorDetails") or ""))
        raise OperationFailedError(
            code, f"Lightsail answered {what} with a failed operation: {details or code}"
        )
    return str(first["id"])


def _endless(method: str, region: str, why: str) -> TransientError:
    """The error of a listing that would never end."""
    return TransientError(
        MALFORMED_ANSWER,
        f"the {method} listing of {region} never ends: {why}; is --endpoint-url Lightsail's?",
        ambiguous=False,
    )


def _snapshot_info(region: str, kind: str, item: dict[str, Any]) -> SnapshotInfo:
    action = f"Get{kind.title()}Snapshot(s)"
    name, tags = item.get("name"), item.get("tags") or []
    if not isinstance(name, str) or not name:
        raise malformed(action, "name")
    if not isinstance(tags, list) or not all(
        isinstance(t, dict) and isinstance(t.get("key"), str) for t in tags
    ):
        raise malformed(action, f"tags[].key (in {printable(name)})")
    origin = item.get("fromInstanceName" if kind == "instance" else "fromDiskName")
    if kind == "disk" and not origin:
        origin = item.get("fromInstanceName")  # a snapshot of an instance's system disk
    # Text from the service reaches messages, logs and terminals: no escapes in it.
    size = item.get("sizeInGb") or 0
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise malformed(action, f"sizeInGb (in {printable(name)})")
    return SnapshotInfo(
        region=region,
        name=name,
        kind=kind,
        state=printable(str(item.get("state") or "")),
        origin=printable(str(origin or "")),
        created_at=_epoch(item.get("createdAt"), action, f"{name}: createdAt"),
        size_in_gb=size,
        tags=tuple((printable(t["key"]), printable(str(t.get("value") or ""))) for t in tags),
    )


def _field(response: dict[str, Any], key: str, kind: type, action: str, **how: bool) -> Any:
    """``response[key]`` if it is a ``kind``; else the answer is not what ``action``
    promises: :func:`_malformed`."""
    value = response.get(key)
    if not isinstance(value, kind):
        raise malformed(action, key, **how)
    return value


class _Unparsed:
    """A timestamp botocore could not read: kept as a value, so the caller that reads the
    field can name it, instead of the whole answer failing inside the parser."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unparsed timestamp>"


_UNPARSED = _Unparsed()


def _parse_time(value: Any) -> Any:
    """botocore's timestamp parser, minus its crashes: a value out of range (1e300 raises
    RuntimeError "Unable to calculate correct timezone offset", 1e18 OverflowError) or no
    time at all (NaN, a word) becomes :data:`_UNPARSED`, for :func:`_epoch` to refuse."""
    try:
        return parse_timestamp(value)
    except Exception:  # any failure is the answer's, and said by the field's reader
        return _UNPARSED


def _epoch(value: Any, action: str, what: str = "createdAt") -> float:
    """botocore parses timestamps into datetimes. 0 means unknown: absent, or a time no
    snapshot can have (0, 1970); whatever relies on it must treat it as no evidence.
    ``what`` names the field in the error of a value that is no time."""
    if value is None:
        return 0.0
    try:
        if isinstance(value, (_Unparsed, bool)):
            raise TypeError(what)
        seconds = float(value.timestamp()) if hasattr(value, "timestamp") else float(value)
        if not math.isfinite(seconds):
            raise ValueError(what)
    except (TypeError, ValueError, OverflowError, OSError):
        raise malformed(action, what) from None
    # 0 means unknown: a time no snapshot can have (0, 1970) is no evidence either.
    return seconds if seconds >= _EARLIEST else 0.0
