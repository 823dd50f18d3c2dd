"""The documentation a user reads says what the installed CLI does."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def reference_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "docs/cli_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_the_real_help() -> None:
    """docs/cli.md is exactly what every command's --help prints (regenerate it with
    python docs/cli_reference.py)."""
    reference = reference_module()
    written = (ROOT / "docs/cli.md").read_text(encoding="utf-8")
    assert written == reference.render(), "docs/cli.md is stale: run python docs/cli_reference.py"


def test_cli_reference_covers_every_command_and_option() -> None:
    """Each command has its section, and every option of `run` appears in it."""
    reference = reference_module()
    written = (ROOT / "docs/cli.md").read_text(encoding="utf-8")
    for name in reference.commands():
        assert f"## batchcopy {name}\n" in written
    run_section = written.split("## batchcopy run\n")[1].split("\n## ")[0]
    for option in ("--resume", "--wait", "--metrics-file", "--max-in-flight", "--dry-run"):
        assert option in run_section


def test_readme_names_every_command() -> None:
    """The README mentions every command the CLI has and links the full reference."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in reference_module().commands():
        assert re.search(rf"batchcopy {name}\b", readme), name
    assert "docs/cli.md" in readme
