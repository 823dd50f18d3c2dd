"""batchcopy: fast, safe bulk copies of Amazon Lightsail snapshots.

The async API::

    import batchcopy

    manifest = batchcopy.load_manifest("jobs.csv")
    report = await batchcopy.copy_snapshots(manifest, batchcopy.Settings(rate=10))

    policy = batchcopy.Policy(keep_daily=7, keep_weekly=4)
    pruned = await batchcopy.prune_snapshots(policy, delete=True, report_dir="prune-report")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchcopy.api import RunControl, copy_snapshots, stream_copies
    from batchcopy.engine import RegionCounters
    from batchcopy.errors import (
        BatchcopyError,
        CredentialsError,
        EndpointUnreachableError,
        LightsailError,
        ManifestError,
        PermanentError,
        Problem,
        ReportDirError,
        SettingsError,
        ThrottledError,
        TransientError,
    )
    from batchcopy.jobs import CopyJob, JobResult, Status
    from batchcopy.manifest import Manifest, load_manifest
    from batchcopy.merge import merge_reports
    from batchcopy.prune import PruneResult, PruneScope, PruneStatus
    from batchcopy.prune_report import PruneReport, PruneSummary
    from batchcopy.pruner import prune_snapshots
    from batchcopy.report import Report, Summary
    from batchcopy.retention import Duration, Policy, parse_duration
    from batchcopy.retry import RetryPolicy
    from batchcopy.settings import OnExists, Settings
    from batchcopy.shards import Shard

__version__ = "0.1.0"

# Each public name and the module that defines it. They are imported on first use, so
# `batchcopy --help` and `batchcopy validate` do not pay for the engine, anyio and tenacity.
_EXPORTS = {
    "BatchcopyError": "batchcopy.errors",
    "CopyJob": "batchcopy.jobs",
    "CredentialsError": "batchcopy.errors",
    "Duration": "batchcopy.retention",
    "EndpointUnreachableError": "batchcopy.errors",
    "JobResult": "batchcopy.jobs",
    "LightsailError": "batchcopy.errors",
    "Manifest": "batchcopy.manifest",
    "ManifestError": "batchcopy.errors",
    "OnExists": "batchcopy.settings",
    "PermanentError": "batchcopy.errors",
    "Policy": "batchcopy.retention",
    "Problem": "batchcopy.errors",
    "PruneReport": "batchcopy.prune_report",
    "PruneResult": "batchcopy.prune",
    "PruneScope": "batchcopy.prune",
    "PruneStatus": "batchcopy.prune",
    "PruneSummary": "batchcopy.prune_report",
    "RegionCounters": "batchcopy.engine",
    "Report": "batchcopy.report",
    "ReportDirError": "batchcopy.errors",
    "RetryPolicy": "batchcopy.retry",
    "RunControl": "batchcopy.api",
    "Settings": "batchcopy.settings",
    "SettingsError": "batchcopy.errors",
    "Shard": "batchcopy.shards",
    "Status": "batchcopy.jobs",
    "Summary": "batchcopy.report",
    "ThrottledError": "batchcopy.errors",
    "TransientError": "batchcopy.errors",
    "copy_snapshots": "batchcopy.api",
    "load_manifest": "batchcopy.manifest",
    "merge_reports": "batchcopy.merge",
    "parse_duration": "batchcopy.retention",
    "prune_snapshots": "batchcopy.pruner",
    "stream_copies": "batchcopy.api",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'batchcopy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BatchcopyError",
    "CopyJob",
    "CredentialsError",
    "Duration",
    "EndpointUnreachableError",
    "JobResult",
    "LightsailError",
    "Manifest",
    "ManifestError",
    "OnExists",
    "PermanentError",
    "Policy",
    "Problem",
    "PruneReport",
    "PruneResult",
    "PruneScope",
    "PruneStatus",
    "PruneSummary",
    "RegionCounters",
    "Report",
    "ReportDirError",
    "RetryPolicy",
    "RunControl",
    "Settings",
    "SettingsError",
    "Shard",
    "Status",
    "Summary",
    "ThrottledError",
    "TransientError",
    "__version__",
    "copy_snapshots",
    "load_manifest",
    "merge_reports",
    "parse_duration",
    "prune_snapshots",
    "stream_copies",
]
