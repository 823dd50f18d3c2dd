"""The async API: run copy jobs and get a report, or a stream of results as they finish.

    import batchcopy

    manifest = batchcopy.load_manifest("jobs.csv")
    report = await batchcopy.copy_snapshots(manifest, batchcopy.Settings(rate=10))

    async with batchcopy.stream_copies(jobs, settings) as results:
        async for result in results:
            print(result.job.target, result.status)

Credentials and the endpoint come from aiobotocore's usual chain (profile, environment,
shared config, SSO) unless :class:`Settings` names them. asyncio is the backend.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import anyio

from batchcopy.engine import Engine, SnapshotAPI
from batchcopy.errors import CredentialsError
from batchcopy.jobs import CopyJob, JobResult
from batchcopy.manifest import Manifest
from batchcopy.report import Report, ReportWriter, prepare_report_dir
from batchcopy.settings import Settings

__all__ = ["copy_snapshots", "stream_copies"]


@contextlib.asynccontextmanager
async def stream_copies(
    jobs: Iterable[CopyJob], settings: Settings | None = None, *, api: SnapshotAPI | None = None
) -> AsyncIterator[AsyncIterator[JobResult]]:
    """Run ``jobs``; yield an async iterator of their results, each as it finishes.

    Leaving the block early cancels the jobs still running. ``api`` replaces the real
    Lightsail clients (for tests that drive a different backend).
    """
    settings = settings or Settings()
    async with contextlib.AsyncExitStack() as stack:
        if api is None:
            from batchcopy.lightsail import LightsailClients  # aiobotocore is slow to import

            api = await stack.enter_async_context(LightsailClients(settings))
        send, receive = anyio.create_memory_object_stream[JobResult](4 * settings.max_in_flight)
        try:
            async with anyio.create_task_group() as tg, receive:
                tg.start_soon(Engine(api, settings).run, jobs, send)
                yield receive
                tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # Unusable credentials end the run wherever they surface: raise one, plainly.
            matched, rest = group.split(CredentialsError)
            if matched is None or rest is not None:
                raise
            raise _first(matched) from None


def _first(group: BaseExceptionGroup[CredentialsError]) -> CredentialsError:
    exc = group.exceptions[0]
    return _first(exc) if isinstance(exc, BaseExceptionGroup) else exc


async def copy_snapshots(
    jobs: Manifest | Iterable[CopyJob],
    settings: Settings | None = None,
    *,
    report_dir: Path | str | None = None,
    on_result: Callable[[JobResult], None] | None = None,
    keep_results: bool = True,
    api: SnapshotAPI | None = None,
) -> Report:
    """Run every job and return the report; with ``report_dir``, also write its files.

    ``jobs`` is a :class:`Manifest` (streamed, read twice: once to run, once to account for
    jobs that never ran) or any iterable of jobs. ``on_result`` sees each result as it
    arrives. The report is written even when the run is cancelled; jobs that never ran are
    ``not_started``.
    """
    if isinstance(jobs, Manifest):
        manifest, total, sha256 = jobs, jobs.total, jobs.sha256
        name = jobs.name
        stream: Callable[[], Iterable[CopyJob]] = jobs.jobs
    else:
        listed = list(jobs)
        total, name, stream = len(listed), "<api>", lambda: listed
        sha256 = hashlib.sha256(
            "\n".join(json.dumps(j.to_row(), sort_keys=True) for j in listed).encode()
        ).hexdigest()
        manifest = None
    directory = prepare_report_dir(Path(report_dir)) if report_dir is not None else None
    writer = ReportWriter(
        directory,
        manifest=name if manifest is None else str(manifest.name),
        manifest_sha256=sha256,
        total=total,
        keep_results=keep_results,
    )
    try:
        async with stream_copies(stream(), settings, api=api) as results:
            async for result in results:
                writer.add(result)
                if on_result is not None:
                    on_result(result)
    finally:
        # Synchronous, so a cancellation cannot cut it short: the report is always written.
        report = writer.finish(stream())
    return report
