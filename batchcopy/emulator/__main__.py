"""``python -m batchcopy.emulator``: the same as ``batchcopy emulator``."""

from batchcopy.cli import emulator_main

emulator_main()
