"""batchcopy: fast, safe bulk copies of Amazon Lightsail snapshots.

The async API::

    import batchcopy

    manifest = batchcopy.load_manifest("jobs.csv")
    report = await batchcopy.copy_snapshots(manifest, batchcopy.Settings(rate=10))
"""

from batchcopy.api import RunControl, copy_snapshots, stream_copies
from batchcopy.errors import (
    BatchcopyError,
    CredentialsError,
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
from batchcopy.report import Report, Summary
from batchcopy.retry import RetryPolicy
from batchcopy.settings import OnExists, Settings

__version__ = "0.1.0"

__all__ = [
    "BatchcopyError",
    "CopyJob",
    "CredentialsError",
    "JobResult",
    "LightsailError",
    "Manifest",
    "ManifestError",
    "OnExists",
    "PermanentError",
    "Problem",
    "Report",
    "ReportDirError",
    "RetryPolicy",
    "RunControl",
    "Settings",
    "SettingsError",
    "Status",
    "Summary",
    "ThrottledError",
    "TransientError",
    "__version__",
    "copy_snapshots",
    "load_manifest",
    "stream_copies",
]
