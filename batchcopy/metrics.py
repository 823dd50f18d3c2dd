"""A run's totals in Prometheus text format, for node_exporter's textfile collector.

A scheduled run (cron, a systemd timer) leaves one file that node_exporter serves, so an alert
can ask how long ago a run last exited 0. The file is written under a temporary name in the
same folder and renamed into place (``prometheus_client.write_to_textfile``), so the collector
never reads half a file. Every value is a gauge: it describes the last run, not a running
count. Only this module imports prometheus_client; the CLI imports it only when
``--metrics-file`` is given.

``batchcopy_last_success_timestamp_seconds`` outlives failed runs: it is read back from the
previous file and kept until a run exits 0 again (0 until one has).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from batchcopy.errors import SettingsError
from batchcopy.jobs import Status, rates_by_region

if TYPE_CHECKING:
    from batchcopy.prune_report import PruneSummary
    from batchcopy.report import Summary

__all__ = [
    "LAST_SUCCESS",
    "check_metrics_file",
    "last_success",
    "write_metrics",
    "write_not_run",
    "write_prune_metrics",
]

LAST_SUCCESS = "batchcopy_last_success_timestamp_seconds"
PRUNE_LAST_SUCCESS = "batchcopy_prune_last_success_timestamp_seconds"

log = logging.getLogger(__name__)


def check_metrics_file(path: Path) -> Path:
    """Prove a metrics file can be written at ``path``, before any API call is made.

    The folder must exist (it is node_exporter's, so it is not created) and take a new file:
    the file itself is replaced by a rename at the end of the run."""
    hint = "choose another path with --metrics-file"
    if path.is_dir():
        raise SettingsError(f"--metrics-file {path}: is a folder; give a file name in it ({hint})")
    folder = path.parent
    if not folder.is_dir():
        raise SettingsError(f"--metrics-file {path}: the folder {folder} does not exist; {hint}")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".batchcopy-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"--metrics-file {path}: cannot write in {folder} ({reason}); {hint}"
        raise SettingsError(message) from None
    return path


def last_success(path: Path, name: str = LAST_SUCCESS) -> float | None:
    """The last-success time an earlier run left in ``path``, if it holds a usable one."""
    try:
        text = path.read_text(encoding="utf-8")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and math.isfinite(sample.value) and sample.value > 0:
                    return sample.value
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, or not Prometheus text
        log.warning("%s: no last-success time read back (%s); starting afresh", path, exc)
    return None


def write_metrics(summary: Summary, path: Path, *, by_account: bool = False) -> None:
    """Write the run's metrics to ``path`` atomically; raises OSError if that fails.

    Jobs and rates are by target region, summed over accounts; ``by_account`` adds jobs by
    account too (a label per account: asked for, not given, to keep series few)."""
    success = summary.finished_at if summary.exit_code == 0 else last_success(path)
    registry = CollectorRegistry()  # never the global one: it holds only this run
    registry.register(_RunMetrics(summary, success or 0.0, by_account=by_account))
    write_to_textfile(str(path), registry)


class _RunMetrics(Collector):
    """The gauges of one finished run."""

    def __init__(self, summary: Summary, success: float, *, by_account: bool) -> None:
        self._summary = summary
        self._success = success
        self._by_account = by_account

    def collect(self) -> Iterator[Metric]:
        s = self._summary
        jobs = GaugeMetricFamily(
            "batchcopy_jobs", "Jobs of the last run by final status.", labels=["status"]
        )
        for status in Status:
            jobs.add_metric([status.value], s.counts.get(status.value, 0))
        yield jobs
        by_region = GaugeMetricFamily(
            "batchcopy_region_jobs",
            "Jobs of the last run by target region and final status.",
            labels=["target_region", "status"],
        )
        for region, counts in s.by_region.items():
            for status in Status:
                by_region.add_metric([region, status.value], counts.get(status.value, 0))
        yield by_region
        if self._by_account and s.by_account:
            accounts = GaugeMetricFamily(
                "batchcopy_account_jobs",
                "Jobs of the last run by account and final status.",
                labels=["account", "status"],
            )
            for account, counts in s.by_account.items():
                for status in Status:
                    accounts.add_metric([account, status.value], counts.get(status.value, 0))
            yield accounts
        by_action = GaugeMetricFamily(
            "batchcopy_throttled_requests_by_action",
            "Requests of the last run that Lightsail throttled, by action (copies, tags, reads).",
            labels=["action"],
        )
        for action, count in s.throttled_by_action.items():
            by_action.add_metric([action], count)
        yield by_action
        rates = GaugeMetricFamily(
            "batchcopy_region_copy_rate",
            "CopySnapshot requests per second each target region was allowed at the end of "
            "the last run (summed over accounts).",
            labels=["target_region"],
        )
        for region, rate in rates_by_region(s.rates).items():
            rates.add_metric([region], rate)
        yield rates
        single = (
            ("batchcopy_run_duration_seconds", "How long the last run took.", s.duration),
            (
                "batchcopy_copy_requests",
                "CopySnapshot requests the last run sent, retries included.",
                s.attempts,
            ),
            (
                "batchcopy_throttled_requests",
                "CopySnapshot requests of the last run that Lightsail throttled.",
                s.throttles,
            ),
            (
                "batchcopy_reconciled_jobs",
                "Jobs of the last run decided by looking the target up after a lost answer.",
                s.reconciled,
            ),
            (
                "batchcopy_tag_failures",
                "Copies of the last run that were made but could not be tagged.",
                s.tag_failures,
            ),
            ("batchcopy_exit_code", "The exit code of the last run.", s.exit_code),
            (
                "batchcopy_last_run_timestamp_seconds",
                "When the last run ended, in Unix seconds.",
                s.finished_at,
            ),
            (
                LAST_SUCCESS,
                "When the last run that exited 0 ended, in Unix seconds (0: none yet).",
                self._success,
            ),
        )
        for name, documentation, value in single:
            yield GaugeMetricFamily(name, documentation, value=value)


def write_not_run(path: Path, exit_code: int, *, manifest: str = "") -> None:
    """Write the metrics of a run that ended before it started (a usage or manifest error,
    unusable credentials): no jobs, its exit code and end time, the last success kept, so
    the file never shows an earlier run's figures as this one's."""
    from batchcopy.report import Summary  # the report module is not needed otherwise

    now = time.time()
    summary = Summary(
        manifest=manifest,
        manifest_sha256="",
        total=0,
        counts={status.value: 0 for status in Status},
        by_region={},
        attempts=0,
        throttles=0,
        reconciled=0,
        tag_failures=0,
        rates={},
        started_at=now,
        finished_at=now,
        exit_code=exit_code,
    )
    write_metrics(summary, path)


def write_prune_metrics(
    summary: PruneSummary | None, path: Path, *, exit_code: int | None = None
) -> None:
    """Write a prune's metrics to ``path`` atomically: candidates by status, the gigabytes
    freed, delete requests, lanes that could not be listed, the exit code, and when the
    last prune that exited 0 ended (kept from the file until one does). ``summary`` None:
    the prune ended before it started, with ``exit_code``. A plan (no deletes asked for)
    leaves the last success as it was. Raises OSError if it fails."""
    from batchcopy.prune import PruneStatus

    now = time.time()
    code = summary.exit_code if summary is not None else (exit_code or 0)
    # A plan (no --yes) deletes nothing: it is no successful prune, whatever its code.
    deleting = summary is not None and summary.delete
    success = now if code == 0 and deleting else last_success(path, PRUNE_LAST_SUCCESS)
    counts = summary.counts if summary is not None else {}
    statuses = GaugeMetricFamily(
        "batchcopy_prune_snapshots",
        "Candidate copies of the last prune by what became of them.",
        labels=["status"],
    )
    for status in PruneStatus:
        statuses.add_metric([status.value], counts.get(status.value, 0))
    figures = (
        (
            "freed_gigabytes",
            "Gigabytes the last prune deleted (or, without --yes, would).",
            "freed_gb",
        ),
        ("delete_requests", "Delete requests the last prune sent, retries included.", "requests"),
        (
            "throttled_requests",
            "Delete requests of the last prune that were throttled.",
            "throttles",
        ),
    )
    families: list[Metric] = [statuses]
    for name, documentation, attribute in figures:
        value = getattr(summary, attribute) if summary is not None else 0
        families.append(GaugeMetricFamily(f"batchcopy_prune_{name}", documentation, value=value))
    failed = len(summary.lanes_failed) if summary is not None else 0
    single = (
        (
            "batchcopy_prune_lanes_failed",
            "Lanes (account, region) the last prune could not list.",
            failed,
        ),
        ("batchcopy_prune_exit_code", "The exit code of the last prune.", code),
        ("batchcopy_prune_last_run_timestamp_seconds", "When the last prune ended.", now),
        (
            PRUNE_LAST_SUCCESS,
            "When the last prune that exited 0 ended (0: none yet).",
            success or 0.0,
        ),
    )
    families += [GaugeMetricFamily(name, doc, value=value) for name, doc, value in single]
    registry = CollectorRegistry()
    registry.register(_Families(families))
    write_to_textfile(str(path), registry)


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families
