"""Facts about Lightsail that the client side and the emulator both rely on.

Regions come from botocore's own data (the Lightsail model's ``RegionName`` enum and the
endpoint descriptions), never from a hand-written list, so a botocore upgrade that adds a
region reaches batchcopy without a code change.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

__all__ = [
    "NAME_RULE",
    "is_valid_date",
    "is_valid_name",
    "lightsail_regions",
    "region_description",
]

_NAME = re.compile(r"\w[\w\-]*\w", re.ASCII)
NAME_RULE = r"2-255 characters matching \w[\w\-]*\w (letters, digits, _ and -; no - at either end)"


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is a valid Lightsail resource name."""
    return 2 <= len(name) <= 255 and _NAME.fullmatch(name) is not None


def is_valid_date(value: str) -> bool:
    """Whether ``value`` is a real calendar date written as YYYY-MM-DD."""
    if len(value) != 10 or value[4] != "-" or value[7] != "-":
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


@functools.cache
def lightsail_regions() -> tuple[str, ...]:
    """The regions Lightsail serves, in the order of botocore's Lightsail model."""
    from botocore.loaders import create_loader  # deferred: costs ~20 ms at import

    model = create_loader().load_service_model("lightsail", "service-2")
    return tuple(model["shapes"]["RegionName"]["enum"])


@functools.cache
def _descriptions() -> dict[str, str]:
    from botocore.loaders import create_loader

    partitions = create_loader().load_data("endpoints")["partitions"]
    return {
        name: region.get("description", name)
        for partition in partitions
        for name, region in partition["regions"].items()
    }


def region_description(region: str) -> str:
    """botocore's human name for ``region``, such as ``Europe (Ireland)``."""
    return _descriptions().get(region, region)
