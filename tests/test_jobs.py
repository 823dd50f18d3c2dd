"""Copy jobs built in code are checked as a manifest row is, before anything is sent."""

from __future__ import annotations

import pytest

from batchcopy import CopyJob


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"target_snapshot_name": "web.1"}, r"target_snapshot_name 'web\.1': use 2-255"),
        ({"target_snapshot_name": "-web"}, "target_snapshot_name '-web'"),
        ({"source_snapshot_name": "x"}, "source_snapshot_name 'x'"),
        ({"target_region": "eu-west-9"}, "target_region 'eu-west-9' is not a Lightsail region"),
        ({"source_region": "moon-1"}, "source_region 'moon-1' is not a Lightsail region"),
        (
            {
                "source_snapshot_name": None,
                "source_resource_name": "web-1",
                "restore_date": "2026-02-30",
            },
            "restore_date '2026-02-30': use YYYY-MM-DD",
        ),
    ],
)
def test_a_job_with_a_bad_name_or_region_is_refused(
    change: dict[str, str | None], complaint: str
) -> None:
    """A CopyJob with a name Lightsail would refuse, or a region it does not serve, raises
    at once with the field and the rule, instead of failing later at the API."""
    fields = {
        "line": 1,
        "source_region": "us-east-1",
        "target_region": "eu-west-1",
        "source_snapshot_name": "web-1-snap",
        "target_snapshot_name": "web-1-copy",
    }
    CopyJob(**fields)  # type: ignore[arg-type]  # the job itself is fine
    with pytest.raises(ValueError, match=complaint):
        CopyJob(**{**fields, **change})  # type: ignore[arg-type]
