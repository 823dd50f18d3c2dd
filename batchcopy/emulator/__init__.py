"""A local Lightsail that any real client can drive, with fault injection.

Three layers: :mod:`.sim` (state and semantics, no I/O, injected clock), :mod:`.faults`
(seeded per-region throttling, latency, errors, drops and hangs) and :mod:`.server` (the
aiohttp app speaking Lightsail's JSON 1.1 protocol, plus the control API).
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
