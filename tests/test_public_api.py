"""The public surface: what `import batchcopy` offers is what the README documents."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import batchcopy

ROOT = Path(__file__).resolve().parent.parent


def test_all_is_sorted_and_importable() -> None:
    """__all__ is sorted and every name in it exists."""
    assert list(batchcopy.__all__) == sorted(batchcopy.__all__)
    for name in batchcopy.__all__:
        assert hasattr(batchcopy, name), name


def test_lazy_exports_match_all() -> None:
    """Every public name is importable lazily, and nothing else is."""
    assert set(batchcopy._EXPORTS) == set(batchcopy.__all__) - {"__version__"}


def test_readme_documents_exactly_the_public_names() -> None:
    """The README's list of public names matches __all__."""
    readme = (ROOT / "README.md").read_text()
    listed = readme.split("Public names:", 1)[1].split("`examples/", 1)[0]
    documented = set(re.findall(r"`(\w+)`", listed))
    assert documented == set(batchcopy.__all__) - {"__version__"}


def test_async_api_example_runs_against_the_emulator() -> None:
    """examples/async_api.py runs as shipped: copies, then a second pass skips everything."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "async_api.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(" started") == 4
    assert "'skipped': 4" in done.stdout


def test_example_manifest_is_valid() -> None:
    """The shipped example manifest passes validation."""
    manifest = batchcopy.load_manifest(ROOT / "examples" / "manifest.csv")
    assert manifest.total == 4


async def test_a_run_collects_garbage_less_often_and_puts_the_setting_back() -> None:
    """During a run the cyclic collector's first threshold is raised (hundreds of lanes
    keep many objects alive at once); after, the program's own setting is back, and a setting
    the program made higher, or collection turned off, is left alone."""
    import gc

    from batchcopy.api import _RUN_GC_THRESHOLD, _fewer_collections

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with _fewer_collections():
            assert gc.get_threshold() == (_RUN_GC_THRESHOLD, 10, 10)
        assert gc.get_threshold() == (700, 10, 10)
        for own in ((_RUN_GC_THRESHOLD * 2, 5, 5), (0, 10, 10)):
            gc.set_threshold(*own)
            with _fewer_collections():
                assert gc.get_threshold() == own
    finally:
        gc.set_threshold(*before)
