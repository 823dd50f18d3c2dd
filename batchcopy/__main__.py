"""``python -m batchcopy``."""

from batchcopy.cli import main

main()
