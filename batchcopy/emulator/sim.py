"""The simulation core: Lightsail's per-region state and the semantics of each operation.

No I/O and no real time. The clock is injected, and a copy's progress is worked out from it
whenever state is read (``ready_at``), so nothing needs a timer and a test can move time by
hand. Each public ``op_*`` method takes the request's parameters as they arrive on the wire
(already checked against the botocore model for required members and types) and returns the
response body, or raises :class:`ApiError` with the code and status the real service uses.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import itertools
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batchcopy.facts import is_valid_date, is_valid_name, lightsail_regions, region_description

__all__ = [
    "ACCOUNT_ID",
    "ApiError",
    "AutoSnapshot",
    "Lightsail",
    "Operation",
    "Resource",
    "Snapshot",
    "new_arn",
]

ACCOUNT_ID = "123456789012"
AUTO_SNAPSHOTS_KEPT = 7
DEFAULT_PAGE_SIZE = 100

JSON = dict[str, Any]
Clock = Callable[[], float]


class ApiError(Exception):
    """An error response: ``code`` becomes ``__type``, ``status`` the HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _invalid(message: str) -> ApiError:
    return ApiError("InvalidInputException", message)


def _not_found(message: str) -> ApiError:
    return ApiError("NotFoundException", message)


@dataclass(slots=True, kw_only=True)
class AutoSnapshot:
    """One automatic snapshot of an instance or disk, named by its date."""

    date: str
    created_at: float
    status: str = "Success"

    def to_wire(self) -> JSON:
        return {
            "date": self.date,
            "createdAt": self.created_at,
            "status": self.status,
            "fromAttachedDisks": [],
        }


@dataclass(slots=True, kw_only=True)
class Resource:
    """An instance or a disk: something snapshots come from."""

    name: str
    kind: str  # "Instance" or "Disk"
    region: str
    size_in_gb: int
    arn: str
    created_at: float
    blueprint_id: str = "ubuntu_22_04"
    bundle_id: str = "small_3_0"
    tags: dict[str, str] = field(default_factory=dict)
    auto_snapshots: dict[str, AutoSnapshot] = field(default_factory=dict)
    support_code: str = ""  # as pasted from a real answer; made up from the ARN otherwise

    def add_auto_snapshot(self, auto: AutoSnapshot) -> None:
        """Record an automatic snapshot; Lightsail keeps only the newest seven."""
        self.auto_snapshots[auto.date] = auto
        for stale in sorted(self.auto_snapshots)[:-AUTO_SNAPSHOTS_KEPT]:
            del self.auto_snapshots[stale]

    def to_wire(self) -> JSON:
        """The resource as GetInstances / GetDisks list it: a running instance, or a disk
        that is available and not attached."""
        wire: JSON = {
            "name": self.name,
            "arn": self.arn,
            "supportCode": self.support_code or _support_code(self.arn),
            "createdAt": self.created_at,
            "location": {"availabilityZone": f"{self.region}a", "regionName": self.region},
            "resourceType": self.kind,
            "tags": _tags_to_wire(self.tags),
        }
        if self.kind == "Instance":
            wire |= {
                "blueprintId": self.blueprint_id,
                "bundleId": self.bundle_id,
                "isStaticIp": False,
                "state": {"code": 16, "name": "running"},
            }
        else:
            wire |= {
                "sizeInGb": self.size_in_gb,
                "isSystemDisk": False,
                "path": "/dev/xvdf",
                "state": "available",
                "isAttached": False,
            }
        return wire


@dataclass(slots=True, kw_only=True)
class Snapshot:
    """A manual instance or disk snapshot; ``pending`` until the clock passes ``ready_at``."""

    name: str
    kind: str  # "InstanceSnapshot" or "DiskSnapshot"
    region: str
    arn: str
    created_at: float
    size_in_gb: int
    ready_at: float = -math.inf
    final_state: str = ""  # state once ready: available / completed / error
    tags: dict[str, str] = field(default_factory=dict)
    # fromInstanceName, fromDiskName, fromBlueprintId, ... exactly as the wire shows them.
    origin: dict[str, Any] = field(default_factory=dict)
    is_from_auto_snapshot: bool = False
    support_code: str = ""  # as pasted from a real answer; made up from the ARN otherwise

    def state(self, now: float) -> str:
        return self.final_state if now >= self.ready_at else "pending"

    def to_wire(self, now: float) -> JSON:
        state = self.state(now)
        wire: JSON = {
            "name": self.name,
            "arn": self.arn,
            "supportCode": self.support_code or _support_code(self.arn),
            "createdAt": self.created_at,
            "location": {"availabilityZone": "all", "regionName": self.region},
            "resourceType": self.kind,
            "tags": _tags_to_wire(self.tags),
            "state": state,
            "sizeInGb": self.size_in_gb,
            "isFromAutoSnapshot": self.is_from_auto_snapshot,
            **self.origin,
        }
        # Real answers show a disk snapshot's progress always, an instance snapshot's only
        # while it is being made.
        if self.kind == "DiskSnapshot" or state == "pending":
            wire["progress"] = "0%" if state == "pending" else "100%"
        return wire


@dataclass(slots=True, kw_only=True)
class Operation:
    """An asynchronous operation; it reaches its end when the clock passes ``ends_at``."""

    id: str
    seq: int
    region: str
    resource_name: str
    resource_type: str
    operation_type: str
    details: str | None  # None: the answer has no operationDetails (deletes have none)
    created_at: float
    ends_at: float
    error_code: str = ""
    error_details: str = ""

    def status(self, now: float) -> str:
        if now < self.ends_at:
            return "Started"
        return "Failed" if self.error_code else "Succeeded"

    def to_wire(self, now: float) -> JSON:
        status = self.status(now)
        wire: JSON = {
            "id": self.id,
            "resourceName": self.resource_name,
            "resourceType": self.resource_type,
            "createdAt": self.created_at,
            "location": {"availabilityZone": "all", "regionName": self.region},
            "isTerminal": status != "Started",
            "operationDetails": self.details,
            "operationType": self.operation_type,
            "status": status,
            "statusChangedAt": self.created_at if status == "Started" else self.ends_at,
        }
        if self.details is None:
            del wire["operationDetails"]
        if status == "Failed":
            wire["errorCode"] = self.error_code
            wire["errorDetails"] = self.error_details
        return wire


@dataclass(slots=True)
class _Region:
    name: str
    resources: dict[str, Resource] = field(default_factory=dict)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    operation_log: list[Operation] = field(default_factory=list)
    _sorted: dict[str, list[tuple[float, str]]] = field(default_factory=dict)

    def name_in_use(self, name: str) -> bool:
        return name in self.snapshots or name in self.resources

    def oldest_first(self, kind: str) -> list[tuple[float, str]]:
        """(createdAt, name) of the snapshots of one kind, oldest first, kept in order as
        snapshots come and go (Lightsail lists them newest first: read it from the end)."""
        keys = self._sorted.get(kind)
        if keys is None:
            keys = sorted((s.created_at, n) for n, s in self.snapshots.items() if s.kind == kind)
            self._sorted[kind] = keys
        return keys

    def put_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshots[snapshot.name] = snapshot
        if (keys := self._sorted.get(snapshot.kind)) is not None:
            # A new copy is the newest: it goes at the end, so listings stay cheap.
            bisect.insort(keys, (snapshot.created_at, snapshot.name))

    def drop_snapshot(self, snapshot: Snapshot) -> None:
        del self.snapshots[snapshot.name]
        if (keys := self._sorted.get(snapshot.kind)) is not None:
            keys.remove((snapshot.created_at, snapshot.name))


_READY_STATE = {"InstanceSnapshot": "available", "DiskSnapshot": "completed"}
_SNAPSHOT_OF = {"Instance": "InstanceSnapshot", "Disk": "DiskSnapshot"}


def new_arn(region: str, kind: str, account: str = ACCOUNT_ID) -> str:
    return f"arn:aws:lightsail:{region}:{account}:{kind}/{uuid.uuid4()}"


def _support_code(arn: str) -> str:
    """What Lightsail shows support staff: the account and the resource's id, from its ARN."""
    parts = arn.split(":")
    account = parts[4] if len(parts) > 5 and parts[4] else ACCOUNT_ID
    return f"{account}/{arn.rsplit('/', 1)[-1]}"


def _tags_to_wire(tags: Mapping[str, str]) -> list[JSON]:
    return [{"key": k, "value": v} if v else {"key": k} for k, v in tags.items()]


def _page_token(listing: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{listing}:{value}".encode()).decode()


def _read_page_token(listing: str, token: str) -> str:
    """The position a token of ``listing`` stands for; tokens of other listings are refused."""
    try:
        kind, _, value = (
            base64.b64decode(token, altchars=b"-_", validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError, ValueError):
        kind = value = ""
    if kind != listing:
        raise _invalid(
            "The pageToken is not valid. Use the nextPageToken of the previous response."
        )
    return value


class Lightsail:
    """The state of one simulated Lightsail account, region by region.

    ``clock`` returns wall-clock seconds since the epoch (it stamps ``createdAt`` and decides
    when copies finish). ``page_size`` is how many items a ``Get*s`` call returns at most.
    ``account_id`` appears in the ARNs of what the account makes.
    """

    def __init__(
        self, *, clock: Clock, page_size: int = DEFAULT_PAGE_SIZE, account_id: str = ACCOUNT_ID
    ) -> None:
        self.clock = clock
        self.page_size = page_size
        self.account_id = account_id
        self.regions = {name: _Region(name) for name in lightsail_regions()}
        self._seq = itertools.count(1)
        # (source region, source snapshot) -> the CopySnapshot operations made from it that
        # may still be running; ended ones are dropped as they are found.
        self._copies_from: dict[tuple[str, str], list[Operation]] = {}

    def __repr__(self) -> str:
        snapshots = sum(len(r.snapshots) for r in self.regions.values())
        return f"<Lightsail {self.account_id} regions={len(self.regions)} snapshots={snapshots}>"

    # -- building state (seeding) -----------------------------------------------------------

    def region(self, name: str) -> _Region:
        try:
            return self.regions[name]
        except KeyError:
            raise _invalid(f"{name!r} is not a Lightsail region.") from None

    def add_resource(self, resource: Resource) -> None:
        region = self.region(resource.region)
        if region.name_in_use(resource.name):
            raise _invalid(f"The name {resource.name} is already in use in {resource.region}.")
        region.resources[resource.name] = resource

    def add_snapshot(self, snapshot: Snapshot) -> None:
        region = self.region(snapshot.region)
        if region.name_in_use(snapshot.name):
            raise _invalid(f"The name {snapshot.name} is already in use in {snapshot.region}.")
        region.put_snapshot(snapshot)

    # -- reads ------------------------------------------------------------------------------

    def _snapshot(self, region: str, name: str, kind: str) -> Snapshot:
        snapshot = self.region(region).snapshots.get(name)
        if snapshot is None or snapshot.kind != kind:
            label = "Instance snapshot" if kind == "InstanceSnapshot" else "Disk snapshot"
            raise _not_found(f"{label} {name} does not exist in {region}.")
        return snapshot

    def _list_snapshots(self, region: str, kind: str, params: JSON, key: str) -> JSON:
        """Newest first, as Lightsail lists snapshots; a token names the last one given."""
        state = self.region(region)
        keys = state.oldest_first(kind)
        end = len(keys)
        if token := params.get("pageToken"):
            created, _, name = _read_page_token(kind, token).partition("|")
            try:
                end = bisect.bisect_left(keys, (float(created), name))
            except ValueError:
                raise _invalid("The pageToken is not valid.") from None
        start = max(0, end - self.page_size)
        now = self.clock()
        body: JSON = {key: [state.snapshots[n].to_wire(now) for _, n in reversed(keys[start:end])]}
        if start > 0:
            created_at, name = keys[start]
            body["nextPageToken"] = _page_token(kind, f"{created_at!r}|{name}")
        return body

    def op_get_instance_snapshot(self, region: str, params: JSON) -> JSON:
        snap = self._snapshot(region, params["instanceSnapshotName"], "InstanceSnapshot")
        return {"instanceSnapshot": snap.to_wire(self.clock())}

    def op_get_disk_snapshot(self, region: str, params: JSON) -> JSON:
        snap = self._snapshot(region, params["diskSnapshotName"], "DiskSnapshot")
        return {"diskSnapshot": snap.to_wire(self.clock())}

    def op_get_instance_snapshots(self, region: str, params: JSON) -> JSON:
        return self._list_snapshots(region, "InstanceSnapshot", params, "instanceSnapshots")

    def op_get_disk_snapshots(self, region: str, params: JSON) -> JSON:
        return self._list_snapshots(region, "DiskSnapshot", params, "diskSnapshots")

    def _list_resources(self, region: str, kind: str, params: JSON, key: str) -> JSON:
        resources = self.region(region).resources
        # Resources only come from seeding, so sorting per call costs little.
        names = sorted(n for n, r in resources.items() if r.kind == kind)
        start = 0
        if token := params.get("pageToken"):
            start = bisect.bisect_right(names, _read_page_token(kind, token))
        page = names[start : start + self.page_size]
        body: JSON = {key: [resources[n].to_wire() for n in page]}
        if start + self.page_size < len(names):
            body["nextPageToken"] = _page_token(kind, page[-1])
        return body

    def op_get_instances(self, region: str, params: JSON) -> JSON:
        return self._list_resources(region, "Instance", params, "instances")

    def op_get_disks(self, region: str, params: JSON) -> JSON:
        return self._list_resources(region, "Disk", params, "disks")

    def op_get_auto_snapshots(self, region: str, params: JSON) -> JSON:
        resource = self._resource(region, params["resourceName"])
        autos = sorted(resource.auto_snapshots.values(), key=lambda a: a.date, reverse=True)
        return {
            "resourceName": resource.name,
            "resourceType": resource.kind,
            "autoSnapshots": [a.to_wire() for a in autos],
        }

    def op_get_operation(self, region: str, params: JSON) -> JSON:
        operation = self.region(region).operations.get(params["operationId"])
        if operation is None:
            raise _not_found(f"Operation {params['operationId']} does not exist in {region}.")
        return {"operation": operation.to_wire(self.clock())}

    def op_get_operations(self, region: str, params: JSON) -> JSON:
        log = self.region(region).operation_log  # oldest first; listed newest first
        end = len(log)
        if token := params.get("pageToken"):
            position = _read_page_token("Operation", token)
            end = min(int(position), len(log)) if position.isdigit() else 0
        start = max(0, end - self.page_size)
        now = self.clock()
        body: JSON = {"operations": [op.to_wire(now) for op in reversed(log[start:end])]}
        if start > 0:
            body["nextPageToken"] = _page_token("Operation", str(start))
        return body

    def op_get_regions(self, region: str, params: JSON) -> JSON:
        continents = {"us": "NA", "ca": "NA", "sa": "SA", "eu": "EU", "ap": "AP"}
        regions = []
        for name in lightsail_regions():
            entry: JSON = {
                "continentCode": continents.get(name.split("-")[0], "NA"),
                "description": f"Lightsail in {region_description(name)}",
                "displayName": region_description(name),
                "name": name,
            }
            zones = [{"zoneName": f"{name}{z}", "state": "available"} for z in "abc"]
            if params.get("includeAvailabilityZones"):
                entry["availabilityZones"] = zones
            if params.get("includeRelationalDatabaseAvailabilityZones"):
                entry["relationalDatabaseAvailabilityZones"] = zones
            regions.append(entry)
        return {"regions": regions}

    def _resource(self, region: str, name: str) -> Resource:
        resource = self.region(region).resources.get(name)
        if resource is None:
            raise _not_found(f"The resource {name} does not exist in {region}.")
        return resource

    # -- writes -----------------------------------------------------------------------------

    def _operation(
        self,
        region: str,
        resource_name: str,
        resource_type: str,
        operation_type: str,
        *,
        details: str | None = "",
        seconds: float = 0.0,
        error_code: str = "",
    ) -> Operation:
        now = self.clock()
        operation = Operation(
            id=str(uuid.uuid4()),
            seq=next(self._seq),
            region=region,
            resource_name=resource_name,
            resource_type=resource_type,
            operation_type=operation_type,
            details=details,
            created_at=now,
            ends_at=now + seconds,
            error_code=error_code,
            error_details=f"{operation_type} of {resource_name} failed." if error_code else "",
        )
        state = self.region(region)
        state.operations[operation.id] = operation
        state.operation_log.append(operation)
        return operation

    def _claim_name(self, region: str, name: str, param: str) -> None:
        if not is_valid_name(name):
            raise _invalid(
                f"{param} {name!r} is not valid: use 2-255 letters, digits, underscores and "
                "hyphens, starting and ending with a letter, digit or underscore."
            )
        if self.region(region).name_in_use(name):
            raise _invalid(f"The name {name} is already in use in {region}.")

    def op_copy_snapshot(
        self, region: str, params: JSON, *, seconds: float = 0.0, error_code: str = ""
    ) -> JSON:
        """CopySnapshot into ``region`` (the client's); ``error_code`` makes the copy fail."""
        source_region = params["sourceRegion"]
        target = params["targetSnapshotName"]
        if source_region not in self.regions:
            raise _invalid(f"sourceRegion {source_region!r} is not a Lightsail region.")
        manual = params.get("sourceSnapshotName")
        resource_name = params.get("sourceResourceName")
        if (manual is None) == (resource_name is None):
            raise _invalid("Specify exactly one of sourceSnapshotName or sourceResourceName.")
        self._claim_name(region, target, "targetSnapshotName")
        if manual is not None:
            if params.get("restoreDate") or params.get("useLatestRestorableAutoSnapshot"):
                raise _invalid(
                    "restoreDate and useLatestRestorableAutoSnapshot apply only when copying "
                    "an automatic snapshot (sourceResourceName)."
                )
            source = self.region(source_region).snapshots.get(manual)
            if source is None:
                raise _not_found(f"The snapshot {manual} does not exist in {source_region}.")
            if source.state(self.clock()) != _READY_STATE[source.kind]:
                raise _invalid(f"The snapshot {manual} is not ready to be copied.")
            kind, size, origin = source.kind, source.size_in_gb, dict(source.origin)
            source_name, from_auto = manual, False
        else:
            assert resource_name is not None
            resource = self.region(source_region).resources.get(resource_name)
            if resource is None:
                raise _not_found(f"The resource {resource_name} does not exist in {source_region}.")
            self._pick_auto_snapshot(resource, params)
            from_auto = True
            kind, size, source_name = (
                _SNAPSHOT_OF[resource.kind],
                resource.size_in_gb,
                resource_name,
            )
            origin = _origin_of(resource, kind)
        operation = self._operation(
            region,
            target,
            kind,
            "CopySnapshot",
            details=f"{source_region}:{source_name}",
            seconds=seconds,
            error_code=error_code,
        )
        if manual is not None:
            self._copies_from.setdefault((source_region, manual), []).append(operation)
        self.region(region).put_snapshot(
            Snapshot(
                name=target,
                kind=kind,
                region=region,
                arn=new_arn(region, kind, self.account_id),
                created_at=operation.created_at,
                size_in_gb=size,
                ready_at=operation.ends_at,
                final_state="error" if error_code else _READY_STATE[kind],
                origin=origin,
                is_from_auto_snapshot=from_auto,
            )
        )
        return {"operations": [operation.to_wire(self.clock())]}

    @staticmethod
    def _pick_auto_snapshot(resource: Resource, params: JSON) -> AutoSnapshot:
        date: str | None = params.get("restoreDate")
        latest: bool | None = params.get("useLatestRestorableAutoSnapshot")
        if (date is None) == (not latest):
            raise _invalid(
                "For an automatic snapshot specify exactly one of restoreDate or "
                "useLatestRestorableAutoSnapshot."
            )
        if latest or date is None:
            usable = [a for a in resource.auto_snapshots.values() if a.status == "Success"]
            if not usable:
                raise _invalid(f"{resource.name} has no restorable automatic snapshot.")
            return max(usable, key=lambda a: a.date)
        if not is_valid_date(date):
            raise _invalid(f"restoreDate {date!r} is not a date in the format YYYY-MM-DD.")
        auto = resource.auto_snapshots.get(date)
        if auto is None or auto.status != "Success":
            dates = ", ".join(sorted(resource.auto_snapshots)) or "none"
            raise _invalid(
                f"{resource.name} has no restorable automatic snapshot dated {date} (has: {dates})."
            )
        return auto

    def _create_snapshot(
        self,
        region: str,
        name: str,
        param: str,
        kind: str,
        resource: Resource,
        tags: Iterable[JSON],
        seconds: float,
    ) -> JSON:
        self._claim_name(region, name, param)
        snapshot_op = self._operation(
            region, name, kind, f"Create{kind}", seconds=seconds, details=resource.name
        )
        resource_op = self._operation(
            region, resource.name, resource.kind, f"Create{kind}", seconds=seconds, details=name
        )
        self.region(region).put_snapshot(
            Snapshot(
                name=name,
                kind=kind,
                region=region,
                arn=new_arn(region, kind, self.account_id),
                created_at=snapshot_op.created_at,
                size_in_gb=resource.size_in_gb,
                ready_at=snapshot_op.ends_at,
                final_state=_READY_STATE[kind],
                tags=_tags_from_wire(tags),
                origin=_origin_of(resource, kind),
            )
        )
        now = self.clock()
        return {"operations": [snapshot_op.to_wire(now), resource_op.to_wire(now)]}

    def op_create_instance_snapshot(
        self, region: str, params: JSON, *, seconds: float = 0.0
    ) -> JSON:
        instance = self._resource(region, params["instanceName"])
        if instance.kind != "Instance":
            raise _not_found(f"The instance {instance.name} does not exist in {region}.")
        return self._create_snapshot(
            region,
            params["instanceSnapshotName"],
            "instanceSnapshotName",
            "InstanceSnapshot",
            instance,
            params.get("tags", []),
            seconds,
        )

    def op_create_disk_snapshot(self, region: str, params: JSON, *, seconds: float = 0.0) -> JSON:
        disk_name: str | None = params.get("diskName")
        instance_name: str | None = params.get("instanceName")
        if (disk_name is None) == (instance_name is None):
            raise _invalid("Specify exactly one of diskName or instanceName.")
        # A snapshot of an instance's system disk is still a disk snapshot.
        resource = self._resource(region, disk_name or instance_name or "")
        return self._create_snapshot(
            region,
            params["diskSnapshotName"],
            "diskSnapshotName",
            "DiskSnapshot",
            resource,
            params.get("tags", []),
            seconds,
        )

    def _delete(self, region: str, name: str, kind: str) -> JSON:
        """Delete{kind}: NotFoundException for a name that is no snapshot of ``kind`` here;
        the answer is one operation, already Succeeded, without operationDetails (as the
        real service answers)."""
        snapshot = self._snapshot(region, name, kind)
        if copy := self._running_copy_of(region, name):
            # Lightsail does not document what deleting the source of a running copy does.
            # The emulator takes the cautious side and refuses, so a tool that relies on
            # such a delete going through fails here rather than in production.
            raise _invalid(
                f"The snapshot {name} is being copied to {copy.resource_name} in "
                f"{copy.region}; delete it once that copy has ended."
            )
        self.region(region).drop_snapshot(snapshot)
        operation = self._operation(region, name, kind, f"Delete{kind}", details=None)
        return {"operations": [operation.to_wire(self.clock())]}

    def _running_copy_of(self, region: str, name: str) -> Operation | None:
        """A CopySnapshot of this account still running whose source is ``name`` in
        ``region``, or None."""
        key = (region, name)
        copies = self._copies_from.get(key)
        if not copies:
            return None
        now = self.clock()
        copies[:] = [op for op in copies if op.status(now) == "Started"]
        if not copies:
            del self._copies_from[key]
            return None
        return copies[0]

    def op_delete_instance_snapshot(self, region: str, params: JSON) -> JSON:
        return self._delete(region, params["instanceSnapshotName"], "InstanceSnapshot")

    def op_delete_disk_snapshot(self, region: str, params: JSON) -> JSON:
        return self._delete(region, params["diskSnapshotName"], "DiskSnapshot")

    def op_tag_resource(self, region: str, params: JSON) -> JSON:
        name = params["resourceName"]
        state = self.region(region)
        target: Snapshot | Resource | None = state.snapshots.get(name) or state.resources.get(name)
        if target is None:
            raise _not_found(f"The resource {name} does not exist in {region}.")
        if (arn := params.get("resourceArn")) and arn != target.arn:
            raise _invalid(f"resourceArn {arn} does not belong to {name}.")
        target.tags.update(_tags_from_wire(params["tags"]))
        kind = target.kind
        operation = self._operation(region, name, kind, "TagResource", details=name)
        return {"operations": [operation.to_wire(self.clock())]}


def _origin_of(resource: Resource, kind: str) -> JSON:
    """The from* fields a snapshot of ``kind`` taken of ``resource`` carries."""
    if resource.kind == "Instance" and kind == "DiskSnapshot":  # an instance's system disk
        return {"fromInstanceName": resource.name, "fromInstanceArn": resource.arn}
    if resource.kind == "Instance":
        return {
            "fromInstanceName": resource.name,
            "fromInstanceArn": resource.arn,
            "fromBlueprintId": resource.blueprint_id,
            "fromBundleId": resource.bundle_id,
        }
    return {"fromDiskName": resource.name, "fromDiskArn": resource.arn}


def _tags_from_wire(tags: Iterable[JSON]) -> dict[str, str]:
    out: dict[str, str] = {}
    for tag in tags:
        key = tag.get("key")
        if not isinstance(key, str) or not key:
            raise _invalid("Every tag needs a non-empty key.")
        out[key] = str(tag.get("value", ""))
    return out
