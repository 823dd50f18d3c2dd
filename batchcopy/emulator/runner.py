"""Running the emulator as a program: files in, a URL out, until a signal arrives."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
from pathlib import Path
from typing import Any

from batchcopy.emulator.faults import FaultConfig
from batchcopy.emulator.seed import SeedError, demo_seed
from batchcopy.emulator.server import Emulator, host_port, running_emulator

__all__ = ["EmulatorSetupError", "build_emulator", "run_until_signalled"]


class EmulatorSetupError(Exception):
    """A seed or fault file that cannot be used (the message names the file and the place),
    or an address that cannot be listened on (the message names it and the reason)."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise EmulatorSetupError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise EmulatorSetupError(f"{path}: not valid JSON: {exc}") from None


def build_emulator(
    *, seed: Path | None = None, demo: bool = False, faults: Path | None = None
) -> Emulator:
    """An emulator holding the seed file's data (or the demo data) and the fault file's settings."""
    if seed is not None and demo:
        raise EmulatorSetupError("use either a seed file or the demo data, not both")
    data = demo_seed() if demo else _read_json(seed) if seed is not None else None
    config = FaultConfig()
    if faults is not None:
        try:
            config = FaultConfig.from_json(_read_json(faults))
        except ValueError as exc:
            raise EmulatorSetupError(f"{faults}: {exc}") from None
    try:
        return Emulator(seed=data, faults=config)
    except SeedError as exc:
        raise EmulatorSetupError(f"{seed}: {exc}") from None


def run_until_signalled(emulator: Emulator, *, host: str, port: int) -> None:
    """Serve ``emulator``, print its URL as the first line, and stop on SIGINT or SIGTERM.

    An address that cannot be listened on (a port in use, an address of no interface here)
    raises :class:`EmulatorSetupError` at once rather than leaving a process that serves
    nothing."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        listening = False
        try:
            async with running_emulator(emulator, host=host, port=port) as url:
                listening = True
                print(url, flush=True)
                await stop.wait()
        except OSError as exc:
            if listening:
                raise  # not a start-up problem: let it show in full
            where = host_port(host, port)
            raise EmulatorSetupError(f"cannot listen on {where}: {_reason(exc)}") from None

    asyncio.run(main())


def _reason(exc: OSError) -> str:
    """The system's words for a failed bind, without asyncio's restatement of the address."""
    if exc.errno is not None and exc.errno in errno.errorcode:
        return os.strerror(exc.errno).lower()
    return str(exc)
