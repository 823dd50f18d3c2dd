"""How fast is the Lightsail emulator, and how much CPU does it spend per request?

Starts ``python -m batchcopy.emulator --demo`` as a separate process on 127.0.0.1, drives it
with real aiobotocore clients at a fixed number of requests in flight (mostly ``CopySnapshot``
into distinct target names, one in five a ``GetInstanceSnapshot`` read), and prints the wall
time, requests per second, and the CPU time per request of the server and of the client, each
measured on its own process: the server from ``/proc/<pid>/stat`` (or psutil when there is no
/proc), the client with ``time.process_time()``. A small warm-up is not counted.

Run it from the project root::

    python benchmarks/emulator_speed.py [--requests 4000] [--in-flight 64]

It always stops by itself: the request count is bounded, the whole run has a hard timeout,
and the server process is terminated on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

SOURCE_REGION = "us-east-1"
SOURCE_SNAPSHOT = "nyc-web-1-2026-11-20"  # in the demo seed
TARGET_REGION = "eu-west-1"
READ_EVERY = 5  # one request in five is a read
WARM_UP = 100
HARD_TIMEOUT = 120.0
SERVER_COMMAND = [sys.executable, "-m", "batchcopy.emulator", "--demo"]


def server_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        # The command name (field 2) may hold spaces; utime and stime follow it at 14 and 15.
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    import psutil  # no /proc: fall back to psutil if it is installed

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def server_url(proc: asyncio.subprocess.Process) -> str:
    """The first line the emulator prints: its URL."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    url = line.decode().strip()
    if not url.startswith("http://127.0.0.1:"):
        raise RuntimeError(f"the emulator did not print its URL (got {line!r})")
    return url


async def stop_server(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout=5)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def drive(copier: Any, reader: Any, first: int, count: int, in_flight: int) -> Counter[str]:
    """Send ``count`` requests numbered from ``first``, ``in_flight`` at a time; count outcomes."""
    outcomes: Counter[str] = Counter()
    gate = asyncio.Semaphore(in_flight)

    async def one(n: int) -> None:
        async with gate:
            try:
                if n % READ_EVERY == 0:
                    await reader.get_instance_snapshot(instanceSnapshotName=SOURCE_SNAPSHOT)
                    outcomes["read ok"] += 1
                else:
                    await copier.copy_snapshot(
                        sourceRegion=SOURCE_REGION,
                        sourceSnapshotName=SOURCE_SNAPSHOT,
                        targetSnapshotName=f"bench-{n:06d}",
                    )
                    outcomes["copy ok"] += 1
            except ClientError as exc:
                outcomes[f"error {exc.response['Error']['Code']}"] += 1
            except BotoCoreError as exc:
                outcomes[f"error {type(exc).__name__}"] += 1

    await asyncio.gather(*(one(n) for n in range(first, first + count)))
    return outcomes


async def server_request_total(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/_emulator/stats") as resp:
        return int((await resp.json(content_type=None))["requests_total"])


async def run(requests: int, in_flight: int) -> None:
    proc = await asyncio.create_subprocess_exec(*SERVER_COMMAND, stdout=asyncio.subprocess.PIPE)
    try:
        url = await server_url(proc)
        session = get_session()
        config = AioConfig(
            retries={"mode": "standard", "total_max_attempts": 1},
            max_pool_connections=in_flight,
        )

        def client(region: str) -> Any:
            return session.create_client(
                "lightsail",
                region_name=region,
                endpoint_url=url,
                aws_access_key_id="test",
                aws_secret_access_key="test",
                config=config,
            )

        async with client(TARGET_REGION) as copier, client(SOURCE_REGION) as reader:
            await drive(copier, reader, 1, WARM_UP, in_flight)  # not counted
            server_before = server_cpu_seconds(proc.pid)
            client_before = time.process_time()
            wall_before = time.perf_counter()
            outcomes = await drive(copier, reader, WARM_UP + 1, requests, in_flight)
            wall = time.perf_counter() - wall_before
            client_cpu = time.process_time() - client_before
            server_cpu = server_cpu_seconds(proc.pid) - server_before
        seen = await server_request_total(url)
    finally:
        await stop_server(proc)

    server_ms = server_cpu * 1000 / requests
    client_ms = client_cpu * 1000 / requests
    print(f"machine:  {platform.platform()}, Python {platform.python_version()}, ", end="")
    print(f"{os.cpu_count()} CPUs")
    print(f"command:  {shlex.join([sys.executable, *sys.argv])}")
    print(f"server:   {shlex.join(SERVER_COMMAND)}")
    print(f"mix:      {requests} requests, {in_flight} in flight, warm-up {WARM_UP} not counted")
    print(f"outcomes: {', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))}")
    print(f"          (the server counted {seen} requests including the warm-up)")
    print()
    rows = [
        ("requests", f"{requests}"),
        ("wall seconds", f"{wall:.2f}"),
        ("requests/s", f"{requests / wall:.0f}"),
        ("server CPU ms/request", f"{server_ms:.3f}"),
        ("client CPU ms/request", f"{client_ms:.3f}"),
        ("server/client CPU", f"{server_cpu / client_cpu:.2f}" if client_cpu else "n/a"),
    ]
    for name, value in rows:
        print(f"  {name:<24}{value:>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000, help="timed requests (4000)")
    parser.add_argument("--in-flight", type=int, default=64, help="requests at once (64)")
    args = parser.parse_args()
    if args.requests < 1 or args.in_flight < 1:
        parser.error("--requests and --in-flight must be at least 1")

    async def bounded() -> None:
        async with asyncio.timeout(HARD_TIMEOUT):
            await run(args.requests, args.in_flight)

    try:
        asyncio.run(bounded())
    except TimeoutError:
        sys.exit(f"gave up after {HARD_TIMEOUT:.0f} s")


if __name__ == "__main__":
    main()
