"""A local AWS that any real client can drive: Lightsail in one or many accounts, the STS
and Organizations around them, and fault injection.

Layers: :mod:`.sim` (one account's Lightsail state and semantics, no I/O, injected clock),
:mod:`.accounts` (the accounts of a seed and their organization), :mod:`.faults` (seeded
per-account, per-region throttling, latency, errors, drops and hangs), :mod:`.sts` and
:mod:`.organizations` (those services' answers), :mod:`.wire` (Lightsail's JSON 1.1
format) and :mod:`.server` (the aiohttp app serving all three at one URL, plus the control
API).
"""

from batchcopy.emulator.faults import FaultConfig, FaultSettings
from batchcopy.emulator.runner import EmulatorSetupError, build_emulator, run_until_signalled
from batchcopy.emulator.seed import SeedError, demo_seed, load_seed
from batchcopy.emulator.server import Emulator, Stats, create_app, running_emulator
from batchcopy.emulator.sim import ApiError, Lightsail

__all__ = [
    "ApiError",
    "Emulator",
    "EmulatorSetupError",
    "FaultConfig",
    "FaultSettings",
    "Lightsail",
    "SeedError",
    "Stats",
    "build_emulator",
    "create_app",
    "demo_seed",
    "load_seed",
    "run_until_signalled",
    "running_emulator",
]
