"""Seed data: the resources and snapshots an emulator starts with.

The format (``--seed FILE``)::

    {"regions": {"us-east-1": {
        "instances": [{"name": "web-1", "sizeInGb": 80}],
        "disks": [{"name": "data-1", "sizeInGb": 256}],
        "instanceSnapshots": [{"name": "web-1-nightly", "fromInstanceName": "web-1"}],
        "diskSnapshots": [{"name": "data-1-nightly", "fromDiskName": "data-1"}],
        "autoSnapshots": {"web-1": ["2026-11-19", "2026-11-20"]}}}}

Snapshot objects have the shape ``GetInstanceSnapshots`` / ``GetDiskSnapshots`` return, so the
output of ``aws lightsail get-instance-snapshots`` can be pasted in as it is (the whole
object or its list); fields the emulator does not keep are ignored and missing ones get
defaults. An automatic snapshot is a date or ``{"date": ..., "status": ...}``; a resource
named only under ``autoSnapshots`` is taken to be an instance.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from batchcopy.emulator.sim import ApiError, AutoSnapshot, Lightsail, Resource, Snapshot, new_arn
from batchcopy.facts import is_valid_date

__all__ = ["SeedError", "demo_seed", "load_seed"]

_INSTANCE_ORIGIN = (
    "fromInstanceName",
    "fromInstanceArn",
    "fromBlueprintId",
    "fromBundleId",
    "fromAttachedDisks",
)
_DISK_ORIGIN = ("fromDiskName", "fromDiskArn", "fromInstanceName", "fromInstanceArn")
_SECTIONS = {"instances", "disks", "instanceSnapshots", "diskSnapshots", "autoSnapshots"}
_DAY = 86_400.0


class SeedError(ValueError):
    """Seed data that cannot be loaded; the message names the place in the file."""


def load_seed(sim: Lightsail, data: Any) -> None:
    """Add everything ``data`` describes to ``sim``."""
    if not isinstance(data, dict) or not isinstance(data.get("regions"), dict):
        raise SeedError('seed data must be an object with a "regions" object')
    now = sim.clock()
    for region, content in data["regions"].items():
        where = f"regions.{region}"
        if region not in sim.regions:
            raise SeedError(f"{where}: not a Lightsail region")
        if not isinstance(content, dict):
            raise SeedError(f"{where}: expected an object")
        unknown = sorted(set(content) - _SECTIONS)
        if unknown:
            raise SeedError(
                f"{where}.{unknown[0]}: unknown section (known: {', '.join(sorted(_SECTIONS))})"
            )
        _load_region(sim, region, content, where, now)


def _load_region(
    sim: Lightsail, region: str, content: dict[str, Any], where: str, now: float
) -> None:
    def each(section: str, build: Callable[[dict[str, Any], str], None]) -> None:
        items = content.get(section, [])
        if isinstance(items, dict) and isinstance(items.get(section), list):
            items = items[section]  # the whole output of the AWS CLI, pasted in
        if not isinstance(items, list):
            raise SeedError(f"{where}.{section}: expected a list")
        for i, item in enumerate(items):
            at = f"{where}.{section}[{i}]"
            if not isinstance(item, dict):
                raise SeedError(f"{at}: expected an object")
            try:
                build(item, at)
            except SeedError:
                raise
            except (ValueError, ApiError) as exc:
                raise SeedError(f"{at}: {exc}") from None

    def resource(kind: str) -> Callable[[dict[str, Any], str], None]:
        def build(item: dict[str, Any], at: str) -> None:
            sim.add_resource(
                Resource(
                    name=_name(item, at),
                    kind=kind,
                    region=region,
                    size_in_gb=_int(item, "sizeInGb", 80 if kind == "Instance" else 32, at),
                    arn=str(item.get("arn") or new_arn(region, kind, sim.account_id)),
                    created_at=_time(item.get("createdAt"), now - 30 * _DAY, at),
                    blueprint_id=str(item.get("blueprintId", "ubuntu_22_04")),
                    bundle_id=str(item.get("bundleId", "small_3_0")),
                    tags=_tags(item.get("tags", []), at),
                    support_code=_text(item, "supportCode", at),
                )
            )

        return build

    def snapshot(
        kind: str, origin_keys: tuple[str, ...], ready: str
    ) -> Callable[[dict[str, Any], str], None]:
        def build(item: dict[str, Any], at: str) -> None:
            state = str(item.get("state", ready))
            sim.add_snapshot(
                Snapshot(
                    name=_name(item, at),
                    kind=kind,
                    region=region,
                    arn=str(item.get("arn") or new_arn(region, kind, sim.account_id)),
                    created_at=_time(item.get("createdAt"), now - _DAY, at),
                    size_in_gb=_int(item, "sizeInGb", 80 if kind == "InstanceSnapshot" else 32, at),
                    final_state=state,
                    tags=_tags(item.get("tags", []), at),
                    origin={k: item[k] for k in origin_keys if k in item},
                    is_from_auto_snapshot=bool(item.get("isFromAutoSnapshot", False)),
                    support_code=_text(item, "supportCode", at),
                )
            )

        return build

    each("instances", resource("Instance"))
    each("disks", resource("Disk"))
    each("instanceSnapshots", snapshot("InstanceSnapshot", _INSTANCE_ORIGIN, "available"))
    each("diskSnapshots", snapshot("DiskSnapshot", _DISK_ORIGIN, "completed"))

    autos = content.get("autoSnapshots", {})
    if not isinstance(autos, dict):
        raise SeedError(f"{where}.autoSnapshots: expected an object of resource name to dates")
    resources = sim.regions[region].resources
    for name, dates in autos.items():
        at = f"{where}.autoSnapshots.{name}"
        if not isinstance(dates, list):
            raise SeedError(f"{at}: expected a list of dates")
        if name not in resources:
            resource("Instance")({"name": name}, at)
        for i, entry in enumerate(dates):
            resources[name].add_auto_snapshot(_auto(entry, f"{at}[{i}]"))


def _name(item: dict[str, Any], at: str) -> str:
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise SeedError(f"{at}.name: required, a non-empty string")
    return name


def _text(item: dict[str, Any], key: str, at: str) -> str:
    value = item.get(key, "")
    if not isinstance(value, str):
        raise SeedError(f"{at}.{key}: expected a string, got {value!r}")
    return value


def _int(item: dict[str, Any], key: str, default: int, at: str) -> int:
    value = item.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SeedError(f"{at}.{key}: expected a whole number of GB, got {value!r}")
    return value


def _time(value: Any, default: float, at: str) -> float:
    """Epoch seconds from a number or an ISO 8601 string (the AWS CLI prints the latter)."""
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            return parsed.timestamp()
    raise SeedError(f"{at}.createdAt: expected epoch seconds or an ISO 8601 time, got {value!r}")


def _tags(tags: Any, at: str) -> dict[str, str]:
    if not isinstance(tags, list) or not all(isinstance(t, dict) and t.get("key") for t in tags):
        raise SeedError(f'{at}.tags: expected a list of {{"key": ..., "value": ...}}')
    return {str(t["key"]): str(t.get("value", "")) for t in tags}


def _auto(entry: Any, at: str) -> AutoSnapshot:
    if isinstance(entry, str):
        entry = {"date": entry}
    date = entry.get("date") if isinstance(entry, dict) else None
    if not isinstance(date, str) or not is_valid_date(date):
        raise SeedError(f"{at}: expected a date YYYY-MM-DD or an object with one, got {entry!r}")
    status = str(entry.get("status", "Success"))
    created = dt.datetime.fromisoformat(date).replace(hour=6, tzinfo=dt.UTC).timestamp()
    return AutoSnapshot(date=date, created_at=created, status=status)


def demo_seed() -> dict[str, Any]:
    """The built-in demo account: three source regions, dozens of snapshots, auto snapshots,
    and one copy in eu-west-1 left by an earlier run."""
    days = [f"2026-11-{d:02d}" for d in range(12, 21)]  # nine days; the oldest two age out
    regions: dict[str, Any] = {}
    for region, prefix, apps in (
        ("us-east-1", "nyc", ("web", "api", "shop", "blog")),
        ("eu-central-1", "fra", ("web", "crm", "mail")),
        ("ap-southeast-2", "syd", ("web", "game")),
    ):
        instances = [
            {
                "name": f"{prefix}-{app}-{n}",
                "sizeInGb": 40 * n,
                "tags": [{"key": "app", "value": app}],
            }
            for app in apps
            for n in (1, 2)
        ]
        disks = [{"name": f"{prefix}-{app}-data", "sizeInGb": 128} for app in apps]
        regions[region] = {
            "instances": instances,
            "disks": disks,
            "instanceSnapshots": [
                {
                    "name": f"{inst['name']}-{day}",
                    "fromInstanceName": inst["name"],
                    "sizeInGb": inst["sizeInGb"],
                    "createdAt": f"{day}T03:00:00Z",
                    "tags": inst["tags"],
                }
                for inst in instances
                for day in days[-2:]
            ],
            "diskSnapshots": [
                {
                    "name": f"{disk['name']}-{day}",
                    "fromDiskName": disk["name"],
                    "sizeInGb": disk["sizeInGb"],
                    "createdAt": f"{day}T04:00:00Z",
                }
                for disk in disks
                for day in days[-3:]
            ],
            "autoSnapshots": {inst["name"]: days for inst in instances[::2]}
            | {disks[0]["name"]: days[-3:]},
        }
    # A copy an earlier run already made: the demo shows it skipped, not copied twice.
    regions["eu-west-1"] = {
        "instanceSnapshots": [
            {
                "name": "nyc-web-1-dr",
                "fromInstanceName": "nyc-web-1",
                "sizeInGb": 40,
                "createdAt": "2026-11-21T02:00:00Z",
                "tags": [{"key": "batchcopy:source", "value": "us-east-1/nyc-web-1-2026-11-20"}],
            }
        ]
    }
    return {"regions": regions}
