"""Copy snapshots from your own asyncio program with batchcopy's async API.

Run it as it is to try it against the built-in emulator (no AWS account needed):

    python examples/async_api.py

or point it at Lightsail (credentials from your usual AWS profile or environment):

    python examples/async_api.py --endpoint-url https://lightsail.eu-west-1.amazonaws.com

It reads examples/manifest.csv, streams each result as it finishes, then copies again (no
job is copied twice: each is skipped, or started while Lightsail is still copying it) and
prints the totals. It writes no files unless asked: with
--report-dir DIR, the second pass also writes its report (summary.json, results.jsonl,
results.csv and the journal) into DIR, as `batchcopy run --report-dir DIR` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import batchcopy

MANIFEST = Path(__file__).with_name("manifest.csv")


@contextlib.asynccontextmanager
async def endpoint(url: str | None) -> AsyncIterator[tuple[str, tuple[str, str] | None]]:
    """The given endpoint, or a built-in emulator with demo data and dummy credentials."""
    if url:
        yield url, None
        return
    from batchcopy.emulator import Emulator, FaultConfig, demo_seed, running_emulator

    # Copies finish at once here; in Lightsail they take minutes (see below).
    instant = FaultConfig.from_json({"operation_seconds": 0})
    async with running_emulator(Emulator(seed=demo_seed(), faults=instant)) as local:
        yield local, ("example", "example")


async def main(url: str | None, report_dir: Path | None) -> int:
    manifest = batchcopy.load_manifest(MANIFEST)  # raises ManifestError listing every problem
    async with endpoint(url) as (endpoint_url, credentials):
        settings = batchcopy.Settings(
            rate=5, max_in_flight=8, endpoint_url=endpoint_url, credentials=credentials
        )
        # Results one by one, as each copy is accepted (or fails):
        async with batchcopy.stream_copies(manifest.jobs(), settings) as results:
            async for result in results:
                print(f"line {result.job.line}: {result.job.target} {result.status}")
        # Or everything at once, with a report folder if one is given (None: counts only).
        # Copying again now sends no copy: each target exists, copied from the same source
        # snapshot, so it is skipped (or started, while Lightsail is still copying it).
        report = await batchcopy.copy_snapshots(manifest, settings, report_dir=report_dir)
    print(report.summary.counts)
    if report_dir is not None:
        print(f"report: {report_dir}")
    return report.exit_code


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint-url", help="Lightsail endpoint; default: a local emulator")
    parser.add_argument(
        "--report-dir", type=Path, help="write the report here (a new folder); default: none"
    )
    args = parser.parse_args()
    if args.report_dir is not None and args.report_dir.exists():
        parser.error(f"--report-dir {args.report_dir} exists; give a new folder")
    raise SystemExit(asyncio.run(main(args.endpoint_url, args.report_dir)))
