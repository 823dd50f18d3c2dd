"""``batchcopy demo``: a real run against the built-in emulator, in this process.

The emulator starts with its demo account (instances, disks, manual and automatic
snapshots in three regions) and some trouble switched on: one target region throttles
below the rate batchcopy asks for, a few calls fail with 5xx, and a few responses are lost
after the copy was made. The bundled manifest copies manual and automatic snapshots into
five regions and follows each copy until it has succeeded; the report shows every job done
once.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchcopy.api import RunControl, copy_snapshots
from batchcopy.jobs import JobResult
from batchcopy.manifest import Manifest, load_manifest
from batchcopy.report import Report
from batchcopy.retry import RetryPolicy
from batchcopy.settings import Settings

__all__ = ["DEMO_FAULTS", "demo_manifest", "run_demo"]

DEMO_FAULTS: dict[str, Any] = {
    "seed": 2026,
    "latency_ms": 40,
    "latency_jitter_ms": 20,
    "error_rate": 0.03,
    "drop_after_rate": 0.06,
    "operation_seconds": 2,
    "regions": {"eu-west-2": {"copy_rate": 1.5, "copy_burst": 2}},
}


def demo_manifest() -> Manifest:
    """The bundled demo manifest, validated."""
    resource = importlib.resources.files("batchcopy") / "data" / "demo-manifest.csv"
    return load_manifest(Path(str(resource)))


async def run_demo(
    *,
    report_dir: Path | None,
    on_result: Callable[[JobResult], None] | None = None,
    control: RunControl | None = None,
) -> Report:
    """Start the emulator, run the demo manifest against it, return the report."""
    from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator

    emulator = Emulator(seed=demo_seed(), faults=FaultConfig.from_json(DEMO_FAULTS))
    async with running_emulator(emulator) as url:
        settings = Settings(  # the rate and burst a run starts with by default
            max_in_flight=8,
            endpoint_url=url,
            credentials=("demo", "demo"),
            read_timeout=5,
            wait=True,
            wait_read_rate=5,
            retry=RetryPolicy(base_delay=0.2, max_delay=2.0, deadline=120),
        )
        manifest = demo_manifest()
        return await copy_snapshots(
            manifest,
            settings,
            report_dir=report_dir,
            on_result=on_result,
            keep_results=False,
            control=control,
        )
