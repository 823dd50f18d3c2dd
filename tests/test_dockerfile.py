"""The Dockerfile builds batchcopy's wheel and runs it as a non-root entrypoint.

No container daemon runs here, so these tests read the Dockerfile and .dockerignore and
check what an image built from them would hold, against pyproject.toml.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
SLIM = {"python:3.11-slim", "python:3.12-slim"}


@dataclass
class Stage:
    """One FROM ... stage: its base image (an earlier stage's, when built on one), name,
    the stage it is built on, and its own instructions, in order."""

    base: str
    name: str | None
    parent: Stage | None = None
    own: list[tuple[str, str]] = field(default_factory=list)

    @property
    def instructions(self) -> list[tuple[str, str]]:
        """Its instructions and those of the stages it is built on, the first ones first."""
        return (self.parent.instructions if self.parent else []) + self.own

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction; comments dropped, continuations joined."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        found.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation"
    return found


def _stages() -> list[Stage]:
    """The Dockerfile's stages, ARG defaults given before the first FROM substituted."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, rest in _instructions(DOCKERFILE.read_text()):
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            parent = next((stage for stage in stages if stage.name == base), None)
            stages.append(Stage(base=parent.base if parent else base, name=name, parent=parent))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].own.append((keyword, rest))
    return stages


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _wheel_name() -> str:
    """The file `pip wheel --no-deps .` writes for this project: the distribution name and
    version normalized as the wheel format says, tagged pure Python (no extension modules)."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    name = re.sub(r"[-_.]+", "_", project["name"]).lower()
    return f"{name}-{Version(project['version'])}-py3-none-any.whl"


def _pip_calls(stage: Stage, verb: str) -> list[list[str]]:
    """The words of each `pip VERB ...` in the stage's RUN instructions."""
    calls = []
    for run in stage.all("RUN"):
        for command in re.split(r"&&|;|\|\|", run):
            words = shlex.split(command)
            if words[:2] in (["pip", verb], ["pip3", verb]) or words[1:4] == ["-m", "pip", verb]:
                calls.append(words)
    return calls


def test_image_is_built_in_two_stages_on_a_slim_python() -> None:
    """The wheel is built in a stage of its own; the image (the default target, the last
    stage) is a slim Python holding it, not built on the stage that has the build's files."""
    stages = _stages()
    copied_from = {args.split()[0].removeprefix("--from=") for args in stages[-1].all("COPY")}
    builders = [stage for stage in stages if stage.name in copied_from]
    assert builders
    assert all(stage.base in SLIM for stage in stages)
    final: Stage | None = stages[-1]
    while final is not None:
        assert final not in builders
        final = final.parent


def test_build_stage_makes_the_wheel_pip_wheel_makes() -> None:
    """The build stage runs `pip wheel --no-deps .` on the project's own files."""
    build = _stages()[0]
    (call,) = _pip_calls(build, "wheel")
    assert "--no-deps" in call
    assert call[-1] == "."
    assert "--no-cache-dir" in call
    copied = [word for args in build.all("COPY") for word in args.split()[:-1]]
    assert "pyproject.toml" in copied


def test_image_installs_the_wheel_its_build_stage_made() -> None:
    """The final stage copies from the build stage exactly the wheel `pip wheel .` writes
    for pyproject.toml's name and version, and installs that file."""
    build, *_, final = _stages()
    (wheel_call,) = _pip_calls(build, "wheel")
    wheel_dir = wheel_call[wheel_call.index("--wheel-dir") + 1]
    (copy,) = [args for args in final.all("COPY") if args.startswith("--from=")]
    source_stage, pattern, _ = re.fullmatch(r"--from=(\S+) (\S+) (\S+)", copy).groups()  # type: ignore[union-attr]
    assert source_stage == build.name
    folder, _, wheel_pattern = pattern.rpartition("/")
    assert folder == wheel_dir
    assert fnmatch.fnmatch(_wheel_name(), wheel_pattern), (_wheel_name(), wheel_pattern)
    # The pattern is this project's wheel, not any wheel: the name and its dash are literal.
    assert wheel_pattern.startswith(_wheel_name().split("-")[0] + "-")
    (install,) = _pip_calls(final, "install")
    wheels = [word for word in install if word.endswith(".whl")]
    assert len(wheels) == 1
    assert fnmatch.fnmatch(_wheel_name(), Path(wheels[0]).name)


def test_image_leaves_no_compiler_cache_or_wheel_behind() -> None:
    """Every pip call skips its cache, the image installs binary wheels only (it has no
    compiler, and installs none), and the copied wheel is deleted once installed."""
    stages = _stages()
    for stage in stages:
        for verb in ("install", "wheel"):
            for call in _pip_calls(stage, verb):
                assert "--no-cache-dir" in call, call
    final = stages[-1]
    (install,) = _pip_calls(final, "install")
    assert "--only-binary=:all:" in install
    runs = " ".join(final.all("RUN"))
    assert not re.search(r"\b(apt-get|apt|apk) .*install\b", runs)
    assert not re.search(r"\b(gcc|g\+\+|build-essential|clang|make)\b", runs)
    assert re.search(r"\brm /tmp/batchcopy-\S*\.whl", runs)


def test_image_runs_batchcopy_as_a_numeric_non_root_user() -> None:
    """The final stage switches to a numeric user other than root before its entrypoint,
    which is the `batchcopy` console script in exec form (so signals reach it)."""
    final = _stages()[-1]
    keywords = [keyword for keyword, _ in final.instructions]
    users = final.all("USER")
    assert users
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    assert keywords[::-1].index("USER") < keywords[::-1].index("RUN")  # no RUN after it
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert not gid or int(gid) != 0
    (entrypoint,) = final.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["batchcopy"]
    scripts = _pyproject()["project"]["scripts"]  # type: ignore[index]
    assert "batchcopy" in scripts
    runs = " ".join(final.all("RUN"))
    assert re.search(rf"useradd --uid {uid}\b", runs)  # the user exists, with a home


def test_aws_batch_target_runs_its_command_as_a_shell_script_as_the_same_user() -> None:
    """`docker build --target aws-batch` is the image with `/bin/sh -c` as its entrypoint
    (AWS Batch cannot replace one), built on the default image, so its user and batchcopy
    are the same."""
    stages = _stages()
    (batch,) = [stage for stage in stages if stage.name == "aws-batch"]
    assert batch.parent is not None
    assert batch.parent is stages[-1].parent
    assert json.loads(batch.all("ENTRYPOINT")[-1]) == ["/bin/sh", "-c"]
    assert batch.all("USER") == stages[-1].all("USER")
    assert not [keyword for keyword, _ in batch.own if keyword in {"USER", "RUN", "COPY"}]


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    """.dockerignore excludes everything but the files the build stage copies, and those
    are all that building the wheel reads: pyproject.toml, its readme and the package."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    build = _stages()[0]
    copied = {word.rstrip("/") for args in build.all("COPY") for word in args.split()[:-1]}
    assert copied == allowed
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    packages = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]  # type: ignore[index]
    tops = {
        path.name
        for path in ROOT.iterdir()
        if (path / "__init__.py").is_file() and any(fnmatch.fnmatch(path.name, p) for p in packages)
    }
    assert tops
    assert {"pyproject.toml", project["readme"], *tops} == copied
    # Pure Python: the wheel is py3-none-any, as the copied pattern expects.
    assert not [p for p in (ROOT / "batchcopy").rglob("*") if p.suffix in {".c", ".pyx", ".so"}]
