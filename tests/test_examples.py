"""The files in examples/: manifests, emulator seed, scheduled runs and the IAM policy."""

from __future__ import annotations

import ast
import datetime as dt
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import boto3
import botocore.session
import pytest
import typer.main
import yaml
from botocore import xform_name
from moto import mock_aws

import batchcopy
from batchcopy.cli import app
from batchcopy.emulator import (
    Emulator,
    FaultConfig,
    FaultSettings,
    build_emulator,
    demo_seed,
    running_emulator,
)
from batchcopy.provenance import SOURCE_TAG
from tests.helpers import settings_for

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SEED = EXAMPLES / "seed.json"
MANIFESTS = ["manifest.csv", "manifest.json", "manifest.jsonl"]
SYSTEMD = EXAMPLES / "systemd"
# The only Lightsail writes: the copy itself, and TagResource for its provenance and tags.
WRITES = {"CopySnapshot", "TagResource", "DeleteInstanceSnapshot", "DeleteDiskSnapshot"}


# -- manifests and seed -----------------------------------------------------------------------


def _jobs(path: Path) -> dict[tuple[str, str], tuple[Any, ...]]:
    """(target region, target name) -> the job's source, for every job of a manifest."""
    return {
        (job.target_region, job.target_snapshot_name): (
            job.source_region,
            job.source_snapshot_name,
            job.source_resource_name,
            job.restore_date,
            job.use_latest,
        )
        for job in batchcopy.load_manifest(path).jobs()
    }


def test_example_manifests_hold_the_same_jobs() -> None:
    """The JSON and JSON Lines examples hold the CSV example's jobs plus one fanned-out row."""
    csv_jobs, json_jobs, jsonl_jobs = (_jobs(EXAMPLES / name) for name in MANIFESTS)
    assert json_jobs == jsonl_jobs
    assert csv_jobs.items() <= json_jobs.items()
    fanned = {key: source for key, source in json_jobs.items() if key not in csv_jobs}
    assert len({name for _, name in fanned}) == 1  # one copy name ...
    assert len({region for region, _ in fanned}) >= 2  # ... in several target regions ...
    assert len(set(fanned.values())) == 1  # ... of one source


@pytest.mark.parametrize("name", MANIFESTS)
async def test_example_manifest_runs_against_the_example_seed(name: str, tmp_path: Path) -> None:
    """Each example manifest copies every job once from an emulator started with seed.json."""
    emulator = build_emulator(seed=SEED)  # what `batchcopy emulator --seed FILE` serves
    manifest = batchcopy.load_manifest(EXAMPLES / name)
    async with running_emulator(emulator) as url:
        report = await batchcopy.copy_snapshots(
            manifest, settings_for(url, copy_tags=True), report_dir=tmp_path / "report"
        )
    assert report.exit_code == 0
    assert report.summary.counts["started"] == manifest.total
    assert sorted(emulator.stats.copies_accepted.values()) == [1] * manifest.total


async def test_multi_account_example_runs_against_its_seed(tmp_path: Path) -> None:
    """manifest-accounts.csv copies every job once, each in its own account, from an
    emulator started with seed-accounts.json, reaching the accounts as accounts.yaml says
    (one role by name, one by ARN with its external id)."""
    from batchcopy.accounts import Access, load_accounts_file

    emulator = build_emulator(seed=EXAMPLES / "seed-accounts.json")
    manifest = batchcopy.load_manifest(EXAMPLES / "manifest-accounts.csv")
    access = Access(accounts=load_accounts_file(EXAMPLES / "accounts.yaml"))
    async with running_emulator(emulator) as url:
        report = await batchcopy.copy_snapshots(
            manifest, settings_for(url, access=access), report_dir=tmp_path / "report"
        )
    assert report.exit_code == 0
    assert report.summary.counts["started"] == manifest.total == 3
    accepted = emulator.stats.copies_accepted
    assert sorted(accepted.values()) == [1] * 3
    assert {key.split("/")[0] for key in accepted} == {"222222222222", "333333333333"}
    assert emulator.stats.assume_role == {"222222222222": 1, "333333333333": 1}


def test_iam_examples_for_accounts_are_documents_iam_accepts() -> None:
    """IAM accepts the member role's trust policy (with the external id accounts.yaml
    gives) and the caller's policy, which allows AssumeRole of the roles the examples name
    and the Organizations reads discover --org and --ou make (tests/test_accounts.py holds
    those to this list)."""
    trust = (EXAMPLES / "iam" / "member-trust-policy.json").read_text()
    caller = (EXAMPLES / "iam" / "caller-policy.json").read_text()
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="BatchcopyCopier", AssumeRolePolicyDocument=trust)
        policy = iam.create_policy(PolicyName="batchcopy-caller", PolicyDocument=caller)
    assert role["Role"]["RoleName"] == "BatchcopyCopier"
    assert policy["Policy"]["PolicyName"] == "batchcopy-caller"
    accounts = yaml.safe_load((EXAMPLES / "accounts.yaml").read_text())["accounts"]
    external = {a["external_id"] for a in accounts if "external_id" in a}
    assert json.loads(trust)["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"] in (
        external
    )
    allowed = {a for s in json.loads(caller)["Statement"] for a in _as_list(s["Action"])}
    assert {
        "sts:AssumeRole",
        "organizations:ListAccounts",
        "organizations:ListAccountsForParent",
        "organizations:ListOrganizationalUnitsForParent",
        "organizations:ListRoots",
    } == allowed


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


# -- scheduled runs: crontab, systemd, Kubernetes ---------------------------------------------


def _cron_line() -> str:
    """The crontab's one schedule line (comments and VAR=value lines left out)."""
    lines = [
        line
        for line in (EXAMPLES / "crontab").read_text().splitlines()
        if line.strip() and not line.startswith("#") and not re.match(r"\w+=", line)
    ]
    assert len(lines) == 1, lines
    return lines[0]


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as section -> key -> values (a key may be given more than once)."""
    return _unit_text(path.read_text())


def _unit_text(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif line.strip() and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _cronjob() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The CronJob document, and every document of the file by kind."""
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "kubernetes/cronjob.yaml").read_text()) if d]
    by_kind = {doc["kind"]: doc for doc in docs}
    return by_kind["CronJob"], by_kind


def _after_dash_c(words: list[str]) -> str:
    assert words[words.index("-c") - 1].endswith("sh"), words
    return words[words.index("-c") + 1]


def _cron_scripts() -> list[str]:
    command = _cron_line().split(maxsplit=5)[5]
    # Cron turns a bare % into a new line; \\% is a literal one.
    assert "%" not in command.replace("\\%", ""), "escape % as \\% in a crontab"
    return [_after_dash_c(shlex.split(command.replace("\\%", "%")))]


def _systemd_scripts() -> list[str]:
    exec_starts = _unit(SYSTEMD / "batchcopy.service")["Service"]["ExecStart"]
    # systemd expands $VAR and %-specifiers itself; $$ and %% are the literal characters.
    return [
        _after_dash_c(shlex.split(line.replace("$$", "$").replace("%%", "%")))
        for line in exec_starts
    ]


def _kubernetes_scripts() -> list[str]:
    pod = _cronjob()[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return [_after_dash_c(c["command"]) for c in (*pod["initContainers"], *pod["containers"])]


# Each scheduler's shell scripts as the shell receives them, the scheduler's own escaping
# undone, in the order one start runs them: cron's one line; systemd's ExecStart= lines
# (a oneshot runs them in order and stops at the first that fails); Kubernetes' init
# container, then the main one (which starts only once the init container exited 0).
STEPS: dict[str, Callable[[], list[str]]] = {
    "crontab": _cron_scripts,
    "systemd": _systemd_scripts,
    "kubernetes": _kubernetes_scripts,
}


def _script(scheduler: str) -> str:
    """All of one start's scripts, as one text to search."""
    return "\n".join(STEPS[scheduler]())


async def _start(scheduler: str, env: dict[str, str]) -> tuple[int, str]:
    """One start of the scheduled job, as its scheduler runs it: each script in order until
    one exits non-zero. systemd gives each start a new RuntimeDirectory; the others none.
    Returns the exit code and the scripts' stderr."""
    env = dict(env)
    if scheduler == "systemd":
        runtime = Path(env["REPORTS"]).parent / "run-batchcopy"
        shutil.rmtree(runtime, ignore_errors=True)
        runtime.mkdir(parents=True)
        env["RUNTIME_DIRECTORY"] = str(runtime)
    errors = []
    for script in STEPS[scheduler]():
        done = await anyio.run_process(["/bin/sh", "-c", script], env=env, check=False)
        errors.append(done.stderr.decode())
        if done.returncode:
            return done.returncode, "".join(errors)
    return 0, "".join(errors)


SCHEDULED_FILES = {
    "crontab": EXAMPLES / "crontab",
    "systemd": SYSTEMD / "batchcopy.service",
    "kubernetes": EXAMPLES / "kubernetes/cronjob.yaml",
}
# The one commented-out line that turns the nightly discover-and-copy into a run of one fixed
# manifest (a migration): MANIFEST set in the scheduler's environment.
_FIXED_MANIFEST_LINE = re.compile(
    r"^(\s*)#\s?((?:MANIFEST=|Environment=MANIFEST=|- \{name: MANIFEST, ).*)$", re.M
)


def _with_fixed_manifest(scheduler: str) -> str:
    """The scheduler's file with its one fixed-manifest line uncommented."""
    text = SCHEDULED_FILES[scheduler].read_text()
    assert len(_FIXED_MANIFEST_LINE.findall(text)) == 1, scheduler
    return _FIXED_MANIFEST_LINE.sub(r"\1\2", text)


def _cron_env(text: str) -> dict[str, str]:
    """The crontab's VAR=value lines (cron takes the rest of the line as the value)."""
    found = (re.match(r"(\w+)=(.*)", line) for line in text.splitlines())
    return {m[1]: m[2].strip() for m in found if m}


def _systemd_env(text: str) -> dict[str, str]:
    values = _unit_text(text)["Service"].get("Environment", [])
    return dict(v.split("=", 1) for value in values for v in shlex.split(value))


def _kubernetes_env(text: str) -> dict[str, str]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    (cronjob,) = [d for d in docs if d["kind"] == "CronJob"]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    envs = [
        {item["name"]: item["value"] for item in container["env"]}
        for container in (*pod["initContainers"], *pod["containers"])
    ]
    assert all(env == envs[0] for env in envs), "the copy and prune containers share one env"
    return envs[0]


_ENV_OF: dict[str, Callable[[str], dict[str, str]]] = {
    "crontab": _cron_env,
    "systemd": _systemd_env,
    "kubernetes": _kubernetes_env,
}


def _scheduled_env(scheduler: str, *, fixed: bool = False) -> dict[str, str]:
    """The variables the scheduler gives the script, as shipped or with MANIFEST uncommented."""
    text = _with_fixed_manifest(scheduler) if fixed else SCHEDULED_FILES[scheduler].read_text()
    return _ENV_OF[scheduler](text)


def _run_options() -> set[str]:
    """Every option `batchcopy run` accepts, as its parser knows them."""
    run = typer.main.get_command(app).commands["run"]
    return {opt for param in run.params for opt in (*param.opts, *param.secondary_opts)}


def _options_of(command: str) -> set[str]:
    """Every option `batchcopy COMMAND` accepts, as its parser knows them."""
    params = typer.main.get_command(app).commands[command].params
    return {opt for param in params for opt in (*param.opts, *param.secondary_opts)}


_OPTION = r"(?<![\w-])--?[a-z][a-z-]*"


def _calls(script: str, command: str) -> list[str]:
    """The arguments of each `batchcopy COMMAND` call in ``script``, as written."""
    return re.findall(rf"batchcopy {command}\b([^\n|&;]*)", script)


@pytest.mark.parametrize("scheduler", STEPS)
def test_scheduled_command_passes_only_options_run_has(scheduler: str) -> None:
    """The cron, systemd and Kubernetes commands call `batchcopy run` with real options only:
    the nightly copy with --wait (so its copies are made before the prune counts them), a
    fixed manifest (a migration) without it."""
    script = _script(scheduler)
    calls = _calls(script, "run")
    assert len(calls) == 2
    used = {option for call in calls for option in re.findall(_OPTION, call)}
    used |= set(re.findall(r"set -- (--[a-z-]+)", script))
    assert {"--resume", "--report-dir", "--wait"} <= used
    assert used <= _run_options()
    nightly, fixed = sorted(calls, key=lambda call: "--wait" not in call)
    assert "--wait" in nightly.split()
    assert "--wait" not in fixed.split()
    assert re.search(r'if \[ -n "\$\{MANIFEST:-\}" \]; then\s+exec batchcopy run', script)


@pytest.mark.parametrize("scheduler", STEPS)
def test_scheduled_prune_uses_the_days_manifest_the_keep_variables_and_yes(
    scheduler: str,
) -> None:
    """The nightly prune is `batchcopy prune --manifest "$m" --keep-daily "$KEEP_DAILY"
    --keep-weekly "$KEEP_WEEKLY" --yes --quiet --report-dir "$d/prune"`, or `--resume
    "$d/prune" --yes` once that folder holds a prune journal; real options only; the
    scheduler sets KEEP_DAILY=7 and KEEP_WEEKLY=4."""
    script = _script(scheduler)
    calls = [shlex.split(call) for call in _calls(script, "prune")]
    used = {word for call in calls for word in call if word.startswith("-")}
    assert used <= _options_of("prune")
    (fresh,) = [call for call in calls if "--manifest" in call]
    (resumed,) = [call for call in calls if "--resume" in call]
    assert len(calls) == 2
    pairs = set(itertools.pairwise(fresh))
    assert {
        ("--manifest", "$m"),
        ("--keep-daily", "$KEEP_DAILY"),
        ("--keep-weekly", "$KEEP_WEEKLY"),
        ("--report-dir", "$d/prune"),
    } <= pairs
    assert {"--yes", "--quiet"} <= set(fresh)
    # --resume continues the recorded plan and refuses scope options.
    assert resumed == ["--resume", "$d/prune", "--yes", "--quiet"]
    assert re.search(r'if \[ -e "\$d/prune/prune\.jsonl" \]; then\s+exec batchcopy prune', script)
    env = _scheduled_env(scheduler)
    assert (env["KEEP_DAILY"], env["KEEP_WEEKLY"]) == ("7", "4")


@pytest.mark.parametrize("scheduler", STEPS)
def test_scheduled_batchcopy_is_the_process_signals_reach(scheduler: str) -> None:
    """Each script ends in `exec batchcopy ...`; under systemd (SIGTERM to the main process)
    and Kubernetes (SIGTERM to each container's PID 1) every run and prune is exec-ed, so
    a stop reaches batchcopy, which writes its report and exits 143."""
    for script in STEPS[scheduler]():
        last = re.split(r"[;\n]|&&|\|\|", script.strip())[-1].strip()
        assert re.match(r"exec batchcopy (run|prune) ", last), (scheduler, last)
        if scheduler != "crontab":  # cron sends no signals
            assert len(re.findall(r"\bbatchcopy (?:run|prune)\b", script)) == len(
                re.findall(r"\bexec batchcopy (?:run|prune)\b", script)
            )


@pytest.mark.parametrize("scheduler", STEPS)
def test_scheduled_command_discovers_the_latest_automatic_snapshots(scheduler: str) -> None:
    """The scheduled script calls `batchcopy discover --auto latest --no-manual --quiet`, one
    --source-region per SOURCE_REGIONS word, into TARGET_REGION, with real options only."""
    script = _script(scheduler)
    (call,) = re.findall(r"batchcopy discover ([^\n|&;]*)", script)
    used = set(re.findall(_OPTION, call))
    used |= set(re.findall(r'for r in \$SOURCE_REGIONS; do set -- "\$@" (--[a-z-]+)', script))
    assert used <= _options_of("discover")
    assert {"--source-region", "--target-region", "--no-manual", "--quiet", "-o"} <= used
    assert "--auto latest" in call
    # Written under a temporary name and renamed once whole: no partial day manifest.
    assert re.search(r'-o "\$m\.partial" && mv "\$m\.partial" "\$m"', script)
    assert '--target-region "$TARGET_REGION"' in call
    env = _scheduled_env(scheduler)
    assert env["SOURCE_REGIONS"].split()
    assert env["TARGET_REGION"]
    assert "MANIFEST" not in env  # shipped as the nightly discover-and-copy


def _copies(region: str, source_region: str, origin: str, nights: list[dt.date]) -> Any:
    """Seed data: a batchcopy copy of ``origin``'s automatic snapshot in ``region``, made
    each of ``nights`` at 03:00 UTC, named and labelled as the nightly run names them."""
    return {
        "regions": {
            region: {
                "instanceSnapshots": [
                    {
                        "name": f"{origin}-auto-{night - dt.timedelta(days=1)}-{region}",
                        "fromInstanceName": origin,
                        "createdAt": f"{night}T03:00:00Z",
                        "tags": [
                            {
                                "key": SOURCE_TAG,
                                "value": f"{source_region}/{origin}@{night - dt.timedelta(days=1)}",
                            }
                        ],
                    }
                    for night in nights
                ]
            }
        }
    }


async def test_scheduled_runs_start_the_days_folder_then_resume_it(tmp_path: Path) -> None:
    """With the fixed-manifest line uncommented (a migration), the first scheduled run of a
    day runs MANIFEST into a new report folder, later ones resume it; nothing is discovered
    and nothing is pruned, though older copies of the same instance are there."""
    for scheduler in STEPS:
        assert _scheduled_env(scheduler, fixed=True)["MANIFEST"] == "/etc/batchcopy/manifest.csv"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "date").write_text("#!/bin/sh\necho 2026-11-21\n")  # a fixed day for every run
    (fake / "date").chmod(0o755)
    scripts = Path(sys.executable).parent
    assert (scripts / "batchcopy").exists(), "the package is installed in this environment"
    reports = tmp_path / "reports"
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(fake), str(scripts), os.environ.get("PATH", "")]),
        "KEEP_DAILY": _scheduled_env("crontab")["KEEP_DAILY"],
        "KEEP_WEEKLY": _scheduled_env("crontab")["KEEP_WEEKLY"],
        "MANIFEST": str(EXAMPLES / "manifest.csv"),
        "REPORTS": str(reports),
    }
    emulator = build_emulator(seed=SEED)
    # Copies of nyc-web-1 (which the manifest copies to eu-west-1) that a nightly prune's
    # daily rule would thin out: three made the same day.
    old = dt.date(2026, 11, 10)
    emulator.add_seed(_copies("eu-west-1", "us-east-1", "nyc-web-1", [old]))
    for hour, night in ((1, dt.date(2026, 11, 8)), (2, dt.date(2026, 11, 9))):
        copies = _copies("eu-west-1", "us-east-1", "nyc-web-1", [night])
        (snapshot,) = copies["regions"]["eu-west-1"]["instanceSnapshots"]
        snapshot["createdAt"] = f"{old}T0{hour}:00:00Z"
        emulator.add_seed(copies)
    async with running_emulator(emulator) as url:
        env["AWS_ENDPOINT_URL_LIGHTSAIL"] = url
        for scheduler in STEPS:
            code, errors = await _start(scheduler, env)
            # --report-dir on a folder with a journal exits 2, so 0 here means it resumed.
            assert code == 0, (scheduler, errors)
    assert not emulator.stats.deletes_accepted
    assert not any(action.startswith("Delete") for _, action, _ in emulator.stats.requests)
    day = reports / "2026-11-21"
    assert [p.name for p in reports.iterdir()] == [day.name]
    assert not (day / "prune").exists()
    records = map(json.loads, (day / "journal.jsonl").read_text().splitlines())
    runs = [record for record in records if record["type"] == "run"]
    assert [r["resume"] for r in runs] == [False, True, True]
    assert json.loads((day / "summary.json").read_text())["counts"]["started"] == 4
    assert sorted(emulator.stats.copies_accepted.values()) == [1, 1, 1, 1]
    assert not list(day.glob("manifest.csv*"))


DAY_1, DAY_2 = "2026-11-21", "2026-11-22"  # the demo's latest automatic snapshots: 2026-11-20


def _fake_date(folder: Path, day: str) -> None:
    """A `date` that prints ``day``, whatever it is asked: the scripts' UTC day."""
    folder.mkdir(exist_ok=True)
    (folder / "date").write_text(f"#!/bin/sh\necho {day}\n")
    (folder / "date").chmod(0o755)


class _Night:
    """The scripts' day and the emulator's clock, kept on the same night: `date` prints the
    day, and the emulator stamps copies at 02:30 UTC that day plus the time since it was set
    (copies still take their real second to be made)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._at = 0.0
        self._set_at = time.time()

    def set(self, day: str) -> None:
        _fake_date(self._folder, day)
        night = dt.datetime.fromisoformat(f"{day}T02:30:00+00:00")
        self._at, self._set_at = night.timestamp(), time.time()

    def clock(self) -> float:
        return self._at + (time.time() - self._set_at)


# Copies made at once: the run's --wait still checks after its first second.
_AT_ONCE = FaultConfig(default=FaultSettings(operation_seconds=0.0))


def _nightly_env(tmp_path: Path, scheduler: str, url: str) -> dict[str, str]:
    """The scheduler's own variables, with batchcopy from this environment, a fake `date`,
    the reports under tmp_path and the emulator as Lightsail."""
    scripts = Path(sys.executable).parent
    assert (scripts / "batchcopy").exists(), "the package is installed in this environment"
    path = [str(tmp_path / "bin"), str(scripts), os.environ.get("PATH", "")]
    return {
        **{k: v for k, v in os.environ.items() if k != "MANIFEST"},
        **_scheduled_env(scheduler),
        "PATH": os.pathsep.join(path),
        "REPORTS": str(tmp_path / "reports"),
        "AWS_ENDPOINT_URL_LIGHTSAIL": url,
        "BATCHCOPY_RATE_STATE": str(tmp_path / "rates.json"),
    }


def _runs(day: Path) -> list[bool]:
    records = map(json.loads, (day / "journal.jsonl").read_text().splitlines())
    return [record["resume"] for record in records if record["type"] == "run"]


@pytest.mark.parametrize("scheduler", STEPS)
async def test_nightly_run_discovers_the_days_latest_snapshots_and_resumes_the_day(
    scheduler: str, tmp_path: Path
) -> None:
    """As shipped, the day's first run discovers the latest automatic snapshots into the day's
    folder and copies them; a later start that day resumes with that manifest (a newer
    snapshot is not picked up, nothing is sent twice); the next day copies the new snapshot
    under a new dated name and skips the copies already made."""
    night = _Night(tmp_path / "bin")
    night.set(DAY_1)
    emulator = Emulator(seed=demo_seed(), faults=_AT_ONCE, clock=night.clock)
    reports = tmp_path / "reports"
    async with running_emulator(emulator) as url:
        env = _nightly_env(tmp_path, scheduler, url)
        regions = env["SOURCE_REGIONS"].split()
        assert len(regions) >= 2  # one --source-region each
        assert "us-east-1" in regions  # where the newer snapshot appears below
        code, errors = await _start(scheduler, env)
        assert code == 0, errors
        day_1 = reports / DAY_1
        manifest = (day_1 / "manifest.csv").read_bytes()
        copied = dict(emulator.stats.copies_accepted)
        assert copied
        assert all(f"-auto-2026-11-20-{env['TARGET_REGION']}" in target for target in copied)
        assert {
            row.source_region for row in batchcopy.load_manifest(day_1 / "manifest.csv").jobs()
        } == set(regions)
        # A newer automatic snapshot appears; the same day's second start must not see it.
        emulator.add_seed({"regions": {"us-east-1": {"autoSnapshots": {"nyc-web-1": [DAY_1]}}}})
        code, errors = await _start(scheduler, env)
        assert code == 0, errors
        assert (day_1 / "manifest.csv").read_bytes() == manifest
        assert _runs(day_1) == [False, True]
        assert emulator.stats.copies_accepted == copied
        night.set(DAY_2)
        code, errors = await _start(scheduler, env)
        assert code == 0, errors
    day_2 = reports / DAY_2
    assert sorted(p.name for p in reports.iterdir()) == [DAY_1, DAY_2]
    assert _runs(day_2) == [False]
    new = {t for t in emulator.stats.copies_accepted if t not in copied}
    assert new == {f"{env['TARGET_REGION']}/nyc-web-1-auto-{DAY_1}-{env['TARGET_REGION']}"}
    assert set(emulator.stats.copies_accepted.values()) == {1}
    counts = json.loads((day_2 / "summary.json").read_text())["counts"]
    assert (counts["succeeded"], counts["skipped"]) == (1, len(copied) - 1)
    assert not list(reports.glob("*/manifest.csv.*"))
    # Each night pruned in its own folder; one copy a night is kept by the daily rule.
    assert (day_1 / "prune" / "summary.json").is_file()
    assert (day_2 / "prune" / "summary.json").is_file()
    assert not emulator.stats.deletes_accepted


@pytest.mark.parametrize("scheduler", STEPS)
@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"SOURCE_REGIONS": "ap-northeast-1"}, 2),  # nothing to copy there
        ({"SOURCE_REGIONS": "us-east-9"}, 2),  # not a region
        ({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, 253),
    ],
    ids=["nothing matched", "bad region", "no credentials"],
)
async def test_nightly_run_does_not_start_when_discover_fails(
    scheduler: str, change: dict[str, str], code: int, tmp_path: Path
) -> None:
    """When discover fails the run does not start, the script exits with discover's code,
    and no day manifest (whole or partial) is left, so the next start discovers afresh."""
    emulator = build_emulator(demo=True)
    async with running_emulator(emulator) as url:
        env = {**_nightly_env(tmp_path, scheduler, url), **change}
        env = {k: v for k, v in env.items() if v}
        _fake_date(tmp_path / "bin", DAY_1)
        exit_code, errors = await _start(scheduler, env)
    assert exit_code == code, errors
    # discover's own message; a run of the missing manifest would have named it.
    assert errors.strip()
    assert "manifest.csv" not in errors
    day = tmp_path / "reports" / DAY_1
    assert not day.exists() or not [p.name for p in day.iterdir()]
    assert not emulator.stats.copies_accepted


def _kept_by_policy(nights: set[dt.date], daily: int, weekly: int) -> set[dt.date]:
    """restic's --keep-daily/--keep-weekly over one copy a night: the newest night of each
    of the ``daily`` latest days, and of each of the ``weekly`` latest ISO weeks; a rule
    that finds fewer periods than its count also keeps the oldest night (restic 0.16+)."""
    kept = set()
    for count, bucket in ((daily, lambda d: d), (weekly, lambda d: d.isocalendar()[:2])):
        buckets: set[Any] = set()
        for night in sorted(nights, reverse=True):
            if len(buckets) == count:
                break
            if bucket(night) not in buckets:
                buckets.add(bucket(night))
                kept.add(night)
        if len(buckets) < count:
            kept.add(min(nights))
    return kept


def _web_1_emulator(night: _Night) -> Emulator:
    """An emulator on ``night``'s clock with one instance, web-1, in us-east-1, whose copies
    are made at once."""
    return Emulator(
        seed={"regions": {"us-east-1": {"instances": [{"name": "web-1"}]}}},
        faults=_AT_ONCE,
        clock=night.clock,
    )


def _names(emulator: Emulator, region: str) -> set[str]:
    return set(emulator.sim.regions[region].snapshots)


@pytest.mark.parametrize("scheduler", STEPS)
async def test_nightly_run_prunes_the_older_nights_of_the_origins_it_copied(
    scheduler: str, tmp_path: Path
) -> None:
    """As shipped, a night copies tonight's snapshot, then deletes the copies of that
    instance's earlier nights that KEEP_DAILY and KEEP_WEEKLY no longer keep (restic's
    rules); untagged look-alikes, other instances' copies and other regions' copies stay.
    A second start the same day resumes the prune's folder and deletes nothing twice."""
    today = dt.date(2026, 11, 22)
    night = _Night(tmp_path / "bin")
    night.set(str(today))
    # Copies earlier nights made, over three ISO weeks: the weekly rule keeps some that the
    # daily one lets go.
    history = {today - dt.timedelta(days=n) for n in range(1, 16)}
    emulator = _web_1_emulator(night)
    yesterday = str(today - dt.timedelta(days=1))
    emulator.add_seed({"regions": {"us-east-1": {"autoSnapshots": {"web-1": [yesterday]}}}})
    async with running_emulator(emulator) as url:
        env = _nightly_env(tmp_path, scheduler, url)
        target = env["TARGET_REGION"]
        emulator.add_seed(_copies(target, "us-east-1", "web-1", sorted(history)))
        # Named like web-1's copies but not batchcopy's (no provenance tag); copies of an
        # instance the manifest does not copy; web-1's copies in another region.
        older = [today - dt.timedelta(days=n) for n in range(16, 20)]
        untagged = _copies(target, "us-east-1", "web-1", older)
        for snapshot in untagged["regions"][target]["instanceSnapshots"]:
            snapshot["tags"] = [{"key": "app", "value": "web"}]
        emulator.add_seed(untagged)
        emulator.add_seed(_copies(target, "us-east-1", "old-1", sorted(history)))
        emulator.add_seed(_copies("eu-west-1", "us-east-1", "web-1", sorted(history)))
        others = _names(emulator, target) - _names_of(history, target)
        elsewhere = _names(emulator, "eu-west-1")
        code, errors = await _start(scheduler, env)
        assert code == 0, errors
        assert f"{target}/web-1-auto-{yesterday}-{target}" in emulator.stats.copies_accepted
        # Each copy counts as the night its snapshot was taken: the day before it was made.
        day = dt.timedelta(days=1)
        taken = {night - day for night in history | {today}}
        policy = (int(env["KEEP_DAILY"]), int(env["KEEP_WEEKLY"]))
        kept = {snapshot + day for snapshot in _kept_by_policy(taken, *policy)}
        assert today in kept  # tonight's copy
        deleted = _names_of(history, target) - _names_of(kept, target)
        assert deleted  # the policy has something to delete
        assert set(emulator.stats.deletes_accepted) == {f"{target}/{n}" for n in deleted}
        assert _names(emulator, target) == others | _names_of(kept, target)
        assert _names(emulator, "eu-west-1") == elsewhere
        folder = tmp_path / "reports" / str(today) / "prune"
        assert json.loads((folder / "summary.json").read_text())["counts"]["deleted"] == len(
            deleted
        )
        # A second start the same day: the run and the prune resume; nothing deleted twice.
        deletes = {k: n for k, n in emulator.stats.requests.items() if k[1].startswith("Delete")}
        code, errors = await _start(scheduler, env)
        assert code == 0, errors
    assert _runs(tmp_path / "reports" / str(today)) == [False, True]
    records = map(json.loads, (folder / "prune.jsonl").read_text().splitlines())
    assert [r["resume"] for r in records if r["type"] == "prune"] == [False, True]
    assert set(emulator.stats.deletes_accepted.values()) == {1}
    assert {k: n for k, n in emulator.stats.requests.items() if k[1].startswith("Delete")} == (
        deletes
    )
    assert _names(emulator, target) == others | _names_of(kept, target)


def _names_of(nights: set[dt.date], region: str) -> set[str]:
    """The names the nightly run gives the copies made on ``nights`` in ``region``."""
    return {f"web-1-auto-{night - dt.timedelta(days=1)}-{region}" for night in nights}


@pytest.mark.parametrize("scheduler", STEPS)
async def test_nightly_prune_does_not_start_when_the_run_fails(
    scheduler: str, tmp_path: Path
) -> None:
    """A night whose run exits 1 (tonight's target name is taken by a snapshot batchcopy did
    not make) prunes nothing: the script exits 1 and no delete is sent."""
    night = _Night(tmp_path / "bin")
    night.set(DAY_1)
    today = dt.date.fromisoformat(DAY_1)
    emulator = _web_1_emulator(night)
    emulator.add_seed(
        {
            "regions": {
                "us-east-1": {"autoSnapshots": {"web-1": [str(today - dt.timedelta(days=1))]}}
            }
        }
    )
    async with running_emulator(emulator) as url:
        env = _nightly_env(tmp_path, scheduler, url)
        target = env["TARGET_REGION"]
        history = [today - dt.timedelta(days=n) for n in range(1, 21)]
        emulator.add_seed(_copies(target, "us-east-1", "web-1", history))
        taken = _copies(target, "us-east-1", "web-1", [today])
        for snapshot in taken["regions"][target]["instanceSnapshots"]:
            snapshot["tags"] = []
        emulator.add_seed(taken)
        code, errors = await _start(scheduler, env)
    assert code == 1, errors
    assert not (tmp_path / "reports" / DAY_1 / "prune").exists()
    assert not emulator.stats.deletes_accepted


async def test_systemd_prune_uses_the_runs_day_past_midnight(tmp_path: Path) -> None:
    """Under systemd, a run that ends past UTC midnight is pruned with its own day's manifest
    in its own day's folder: the run hands the day to the prune's ExecStart= through the
    unit's RuntimeDirectory."""
    night = _Night(tmp_path / "bin")
    night.set(DAY_1)
    emulator = _web_1_emulator(night)
    emulator.add_seed({"regions": {"us-east-1": {"autoSnapshots": {"web-1": ["2026-11-20"]}}}})
    run, prune = STEPS["systemd"]()
    async with running_emulator(emulator) as url:
        env = _nightly_env(tmp_path, "systemd", url)
        (tmp_path / "run").mkdir()
        env["RUNTIME_DIRECTORY"] = str(tmp_path / "run")
        ran = await anyio.run_process(["/bin/sh", "-c", run], env=env, check=False)
        assert ran.returncode == 0, ran.stderr.decode()
        night.set(DAY_2)  # midnight passes between the two ExecStart= lines
        pruned = await anyio.run_process(["/bin/sh", "-c", prune], env=env, check=False)
        assert pruned.returncode == 0, pruned.stderr.decode()
    reports = tmp_path / "reports"
    assert [p.name for p in reports.iterdir()] == [DAY_1]
    assert (reports / DAY_1 / "prune" / "summary.json").is_file()


def test_crontab_line_says_exit_75_while_last_nights_run_holds_the_lock(tmp_path: Path) -> None:
    """The crontab's whole line, run while the lock is held, starts nothing and prints the
    line cron mails: exit code 75."""
    import fcntl

    lock = "/var/lib/batchcopy/nightly.lock"
    command = _cron_line().split(maxsplit=5)[5].replace("\\%", "%")
    assert lock in command
    held = tmp_path / "nightly.lock"
    env = {**os.environ, "REPORTS": str(tmp_path / "reports"), "PATH": "/usr/bin:/bin"}
    with held.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        done = subprocess.run(
            ["/bin/sh", "-c", command.replace(lock, str(held))],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=env,
        )
    assert done.stdout.strip() == "batchcopy nightly run exited with code 75", done.stderr
    assert not (tmp_path / "reports").exists()


def test_crontab_line_is_nightly_and_locked() -> None:
    """The crontab runs once a day and skips a night while the previous run holds the lock."""
    minute, hour, day, month, weekday, command = _cron_line().split(maxsplit=5)
    assert minute.isdigit()
    assert hour.isdigit()
    assert (day, month, weekday) == ("*", "*", "*")
    assert command.startswith("flock -n ")
    assert "$?" in command.partition("||")[2]  # a failed run's exit code reaches the mail


def test_systemd_units_are_hardened_oneshot_and_daily() -> None:
    """The service is a hardened oneshot for its own user that may write only its reports."""
    service = _unit(SYSTEMD / "batchcopy.service")["Service"]
    one = {key: values[-1] for key, values in service.items()}
    assert one["Type"] == "oneshot"
    assert one["User"] not in ("", "root")
    assert one["NoNewPrivileges"] == one["PrivateTmp"] == "yes"
    assert one["ProtectSystem"] == "strict"
    env = dict(v.split("=", 1) for value in service["Environment"] for v in shlex.split(value))
    writable = [Path(p) for value in service["ReadWritePaths"] for p in value.split()]
    assert any(Path(env["REPORTS"]).is_relative_to(p) for p in writable)
    timer = {k: v[-1] for k, v in _unit(SYSTEMD / "batchcopy.timer")["Timer"].items()}
    assert timer["Persistent"] == "true"
    assert timer["OnCalendar"]
    assert timer["RandomizedDelaySec"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_systemd_accepts_the_units() -> None:
    """systemd-analyze verify finds nothing wrong with the service and timer files."""
    done = subprocess.run(
        ["systemd-analyze", "verify", *map(str, sorted(SYSTEMD.iterdir()))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_cronjob_runs_alone_non_root_with_reports_on_the_claim() -> None:
    """The CronJob never overlaps, runs as non-root, and keeps its reports and the rates it
    learned on the claim (the root file system is read-only)."""
    cronjob, by_kind = _cronjob()
    spec = cronjob["spec"]
    job = spec["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 <= job["backoffLimit"] <= 3
    # The FailJob rule reads the exit codes of the copy (init) container as well as the
    # prune's: a containerName would limit it to one of them.
    (fail,) = [rule for rule in job["podFailurePolicy"]["rules"] if rule["action"] == "FailJob"]
    assert "containerName" not in fail["onExitCodes"]
    assert fail["onExitCodes"]["operator"] == "In"
    assert {1, 2, 253} == set(fail["onExitCodes"]["values"])
    (init,) = pod["initContainers"]
    for key in ("image", "env", "securityContext", "resources", "volumeMounts"):
        assert init[key] == container[key], key
    assert job["activeDeadlineSeconds"] > 0
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert pod["terminationGracePeriodSeconds"] > 30  # batchcopy's default --shutdown-grace
    account = by_kind["ServiceAccount"]["metadata"]
    assert pod["serviceAccountName"] == account["name"]
    assert account["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    env = {**_scheduled_env("kubernetes"), **_scheduled_env("kubernetes", fixed=True)}

    def volume_of(path: str) -> dict[str, Any]:
        (found,) = [v for mount, v in mounts.items() if Path(path).is_relative_to(mount)]
        return found

    # The fixed manifest (a migration) comes from a ConfigMap the pod can start without.
    assert volume_of(env["MANIFEST"])["configMap"]["optional"] is True
    claim = volume_of(env["REPORTS"])["persistentVolumeClaim"]["claimName"]
    assert claim == by_kind["PersistentVolumeClaim"]["metadata"]["name"]
    # The root file system is read-only: the rates a night learned are kept on the claim.
    rates = volume_of(env["BATCHCOPY_RATE_STATE"])["persistentVolumeClaim"]["claimName"]
    assert rates == claim


# -- IAM policy -------------------------------------------------------------------------------


def _policy() -> dict[str, Any]:
    return json.loads((EXAMPLES / "iam-policy.json").read_text())


def _policy_actions() -> set[str]:
    actions = set()
    for statement in _policy()["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement
        listed = statement["Action"]
        actions |= {listed} if isinstance(listed, str) else set(listed)
    return actions


def _lightsail_actions_called() -> set[str]:
    """The Lightsail actions batchcopy/lightsail.py calls, read from its source.

    Calls go out as ``client.<method>(...)`` or by name (``self._call(region, "copy_snapshot")``
    and the _KINDS and _LISTINGS tables), so both attribute calls on a client and strings
    naming a client method count. botocore's model maps method names to action names.
    """
    model = botocore.session.get_session().get_service_model("lightsail")
    operations = {xform_name(name): name for name in model.operation_names}
    tree = ast.parse((ROOT / "batchcopy" / "lightsail.py").read_text())
    methods = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and "client" in node.func.value.id
            and node.func.attr in operations
        ):
            methods.add(node.func.attr)
        elif isinstance(node, ast.Constant) and str(node.value) in operations:
            methods.add(str(node.value))
    return {operations[method] for method in methods}


def test_iam_policy_is_a_policy_document_iam_accepts() -> None:
    """IAM accepts iam-policy.json as a managed policy, and each statement id is valid."""
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        created = iam.create_policy(
            PolicyName="batchcopy", PolicyDocument=(EXAMPLES / "iam-policy.json").read_text()
        )
    assert created["Policy"]["PolicyName"] == "batchcopy"
    assert all(re.fullmatch(r"[A-Za-z0-9]+", s["Sid"]) for s in _policy()["Statement"])


def test_iam_policy_allows_exactly_the_lightsail_actions_the_code_calls() -> None:
    """The policy allows every Lightsail action batchcopy calls and nothing else."""
    called = _lightsail_actions_called()
    assert "CopySnapshot" in called
    assert "GetOperation" in called
    actions = _policy_actions()
    assert not any("*" in action or "?" in action for action in actions)
    assert {action.partition(":")[0] for action in actions} == {"lightsail"}
    named = {action.partition(":")[2] for action in actions}
    assert named == called
    assert {a for a in named if not a.startswith("Get")} <= WRITES


def test_iam_policy_keeps_tag_resource_apart() -> None:
    """TagResource, which puts provenance and tags on each copy, has a statement of its own."""
    (statement,) = [s for s in _policy()["Statement"] if "lightsail:TagResource" in s["Action"]]
    assert statement["Action"] == ["lightsail:TagResource"]
    assert "Tag" in statement["Sid"]


def test_iam_policy_allows_deletes_only_of_snapshots_batchcopy_tagged() -> None:
    """The deletes have a statement of their own whose condition allows them only on
    snapshots carrying batchcopy's provenance tag (Lightsail's deletes support tag-based
    access control on the resource's tags): an untagged snapshot cannot be deleted."""
    deletes = {"lightsail:DeleteDiskSnapshot", "lightsail:DeleteInstanceSnapshot"}
    statements = _policy()["Statement"]
    (statement,) = [s for s in statements if deletes & set(s["Action"])]
    assert set(statement["Action"]) == deletes
    assert statement["Condition"] == {"Null": {f"aws:ResourceTag/{SOURCE_TAG}": "false"}}
    others = [s for s in statements if s is not statement]
    assert not any(a.startswith("lightsail:Delete") for s in others for a in s["Action"])


# -- installing batchcopy and the async API ---------------------------------------------------


def _install_steps(path: Path) -> list[str]:
    """The shell commands of an example's install steps: its comment lines indented as code
    ("#     command"), in order."""
    return [line[1:].strip() for line in path.read_text().splitlines() if line.startswith("#     ")]


def _pip_requirements(text: str) -> list[str]:
    """What each `pip install` in ``text`` installs: its arguments that are not options."""
    found = []
    for match in re.finditer(r"pip3? install ([^\n&|;#]*)", text):
        found += [word for word in shlex.split(match.group(1)) if not word.startswith("-")]
    return found


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(EXAMPLES.rglob("*")) if p.is_file()] + [ROOT / "README.md"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_example_installs_batchcopy_from_a_package_index(path: Path) -> None:
    """batchcopy is not on a package index: nothing tells pip to fetch it by name; each
    install is of a wheel built from the repository, or of a checkout."""
    for requirement in _pip_requirements(path.read_text()):
        assert not re.fullmatch(r"batchcopy([\[=<>~!].*)?", requirement), (path, requirement)


def test_systemd_installs_from_the_repository_and_says_so() -> None:
    """The systemd steps build a wheel from a checkout and install that, and say why
    (batchcopy is not on a package index)."""
    text = (SYSTEMD / "batchcopy.service").read_text()
    words = " ".join(text.replace("#", " ").split())  # comments' line breaks undone
    assert "batchcopy is not on a package index" in words
    assert "pip wheel --no-deps -w dist ." in words
    installed = [r for r in _pip_requirements(text) if "batchcopy" in r]
    assert installed
    assert all(r.endswith("batchcopy-*.whl") for r in installed)


def test_systemd_install_steps_work_on_a_fresh_host(tmp_path: Path) -> None:
    """The service's install steps, run under a scratch root with no /etc/batchcopy nor
    /etc/systemd/system yet, put both units, and the migration's manifest, where the units
    expect them."""
    steps = _install_steps(SYSTEMD / "batchcopy.service")
    root = tmp_path / "root"
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "examples").symlink_to(EXAMPLES)  # the steps run from a checkout
    (work / "jobs.csv").write_text((EXAMPLES / "manifest.csv").read_text())
    installs = [step for step in steps if step.startswith("install ")]
    assert len(installs) >= 2
    for step in installs:
        words = shlex.split(step)
        assert "-D" in words  # makes missing folders on a fresh host
        sources = [w for w in words[1:] if not w.startswith(("-", "/")) and w not in ("0644",)]
        assert all((work / source).is_file() for source in sources), step
        rooted = [f"{root}{w}" if w.startswith("/") else w for w in words]
        subprocess.run(rooted, cwd=work, check=True, capture_output=True, timeout=30)
    service = _unit(SYSTEMD / "batchcopy.service")["Service"]
    # The manifest step is the migration's: where the commented-out MANIFEST points.
    env = _scheduled_env("systemd", fixed=True)
    installed = root / env["MANIFEST"].lstrip("/")
    assert installed.read_text() == (work / "jobs.csv").read_text()
    for unit in ("batchcopy.service", "batchcopy.timer"):
        placed = root / "etc/systemd/system" / unit
        assert placed.read_bytes() == (SYSTEMD / unit).read_bytes()
        assert placed.stat().st_mode & 0o777 == 0o644
    # The venv the steps make holds the batchcopy the unit's PATH finds.
    (venv_step,) = [step for step in steps if "-m venv" in step]
    venv = shlex.split(venv_step)[shlex.split(venv_step).index("venv") + 1]
    assert f"{venv}/bin" in env["PATH"].split(":")
    assert any(
        step.startswith("useradd ") and step.split()[-1] == service["User"][-1] for step in steps
    )


@pytest.mark.parametrize("asked", [False, True], ids=["not asked", "--report-dir"])
def test_async_api_example_writes_a_report_folder_only_if_asked(
    tmp_path: Path, asked: bool
) -> None:
    """examples/async_api.py copies, then copies again (all skipped); it writes a report
    folder only when given --report-dir, and then that folder holds the second pass."""
    report = tmp_path / "report"
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "async_api.py"),
            *(["--report-dir", str(report)] if asked else []),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "'skipped': 4" in done.stdout
    if asked:
        counts = json.loads((report / "summary.json").read_text())["counts"]
        assert {status: n for status, n in counts.items() if n} == {"skipped": 4}
        assert str(report) in done.stdout
    else:
        assert list(tmp_path.iterdir()) == []


# -- fleets: a Kubernetes Indexed Job and an AWS Batch array job, from the image ------------

KUBERNETES = EXAMPLES / "kubernetes"
BATCH = EXAMPLES / "aws-batch"
# Every Kubernetes and AWS Batch example: each runs the image the Dockerfile builds.
CONTAINER_EXAMPLES = [
    KUBERNETES / "cronjob.yaml",
    KUBERNETES / "indexed-job.yaml",
    KUBERNETES / "merge-job.yaml",
    BATCH / "job-definition.json",
]


def _by_kind(path: Path) -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    by_kind = {doc["kind"]: doc for doc in docs}
    assert len(by_kind) == len(docs), "one document of each kind"
    return by_kind


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


def _env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def _images(path: Path) -> set[str]:
    """The images a Kubernetes or AWS Batch example runs."""
    if path.suffix == ".json":
        return {json.loads(path.read_text())["containerProperties"]["image"]}
    found = set()
    for doc in _by_kind(path).values():
        spec = doc.get("spec", {}).get("jobTemplate", doc).get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        found |= {c["image"] for c in (*pod.get("initContainers", []), *pod.get("containers", []))}
    return found


def _image_user() -> int:
    """The numeric user the Dockerfile's image runs as."""
    (user,) = set(re.findall(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M))
    return int(user)


def _argv_of(script: str, env: dict[str, str], tmp_path: Path) -> list[str]:
    """The command line ``script`` execs batchcopy with, run by /bin/sh under ``env`` with
    a batchcopy on PATH that only writes down its arguments."""
    fake = tmp_path / "fake-bin"
    fake.mkdir(exist_ok=True)
    (fake / "batchcopy").write_text('#!/bin/sh\nprintf "%s\\0" "$@" > "$ARGV_OUT"\n')
    (fake / "batchcopy").chmod(0o755)
    out = tmp_path / "argv"
    out.unlink(missing_ok=True)
    done = subprocess.run(
        ["/bin/sh", "-c", script],
        env={**env, "PATH": f"{fake}:/usr/bin:/bin", "ARGV_OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out.read_text().split("\0")[:-1]


def _parsed(argv: list[str]) -> dict[str, Any]:
    """``argv`` (``batchcopy COMMAND ...``) as the real CLI's parser reads it: the
    command's parameters, or the parser's error (an option it does not have)."""
    command = typer.main.get_command(app).commands[argv[0]]
    with command.make_context(argv[0], argv[1:]) as context:
        return {"command": argv[0], **context.params}


def _last_line(script: str) -> str:
    return script.strip().splitlines()[-1].strip()


@pytest.mark.parametrize("path", CONTAINER_EXAMPLES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_container_examples_run_the_image_the_dockerfile_builds(path: Path) -> None:
    """Every Kubernetes and AWS Batch example runs the image built from the top-level
    Dockerfile (the build command its steps give), installs nothing at start-up, and runs
    as the image's non-root user."""
    # Where each file's build step is: its own comments, or the run's steps it is part of.
    steps = {BATCH: BATCH / "README.md"}.get(path.parent, path)
    if path.name == "merge-job.yaml":
        steps = KUBERNETES / "indexed-job.yaml"
    words = " ".join(steps.read_text().replace("#", " ").split())
    assert "batchcopy is not on a package index" in words
    assert "Dockerfile at the top of a batchcopy checkout" in words
    builds = re.findall(r"docker build (?:--target (\S+) )?-t (\S+) \.", words)
    assert builds
    built = {tag for _, tag in builds}
    assert _images(path) <= built
    if path.parent == BATCH:  # the target whose entrypoint is a shell: Batch runs a script
        assert {target for target, tag in builds if tag in _images(path)} == {"aws-batch"}
    else:
        assert {target for target, tag in builds if tag in _images(path)} == {""}
        for doc in _by_kind(path).values():
            if doc["kind"] in ("Job", "CronJob"):
                spec = doc["spec"].get("jobTemplate", doc)
                assert _pod(spec)["securityContext"]["runAsUser"] == _image_user()
    text = path.read_text()
    assert not re.search(r"\bpip3? (install|wheel)\b", text)


def test_indexed_job_is_an_indexed_job_of_shards_that_resume_on_a_shared_volume() -> None:
    """indexed-job.yaml is an Indexed Job of SHARDS pods at once, each index retried on its
    own (backoffLimitPerIndex, restartPolicy Never) and failed at once on 1, 2 or 253, run
    as non-root on a read-only root file system, its reports and learned rates on one
    ReadWriteMany claim and its manifest from a ConfigMap."""
    by_kind = _by_kind(KUBERNETES / "indexed-job.yaml")
    job = by_kind["Job"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    pod = _pod(job)
    (container,) = pod["containers"]
    env = _env_of(container)
    shards = int(env["SHARDS"])
    assert shards >= 2
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == shards
    assert spec["backoffLimitPerIndex"] >= 1
    assert "backoffLimit" not in spec  # per index instead
    assert pod["restartPolicy"] == "Never"  # backoffLimitPerIndex requires it
    (fail,) = [rule for rule in spec["podFailurePolicy"]["rules"] if rule["action"] == "FailIndex"]
    assert fail["onExitCodes"]["operator"] == "In"
    assert set(fail["onExitCodes"]["values"]) == {1, 2, 253}
    assert fail["onExitCodes"]["containerName"] == container["name"]
    (ignore,) = [rule for rule in spec["podFailurePolicy"]["rules"] if rule["action"] == "Ignore"]
    assert ignore["onPodConditions"] == [{"type": "DisruptionTarget"}]
    assert spec["activeDeadlineSeconds"] > 0
    assert pod["terminationGracePeriodSeconds"] > 30  # batchcopy's default --shutdown-grace
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    account = by_kind["ServiceAccount"]["metadata"]
    assert pod["serviceAccountName"] == account["name"]
    assert account["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}

    def volume_of(path: str) -> dict[str, Any]:
        (found,) = [v for mount, v in mounts.items() if Path(path).is_relative_to(mount)]
        return found

    assert volume_of(env["MANIFEST"])["configMap"]["name"]
    claim = by_kind["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # pods on several nodes write
    for variable in ("REPORTS", "BATCHCOPY_RATE_STATE"):
        used = volume_of(env[variable])["persistentVolumeClaim"]["claimName"]
        assert used == claim["metadata"]["name"], variable
    assert volume_of("/tmp")["emptyDir"] == {}  # noqa: S108 (the pod's own /tmp: a mount path)


def _indexed_job_script() -> tuple[str, dict[str, str], int]:
    (container,) = _pod(_by_kind(KUBERNETES / "indexed-job.yaml")["Job"])["containers"]
    env = _env_of(container)
    return _after_dash_c(container["command"]), env, int(env["SHARDS"])


def test_indexed_job_pods_run_their_shard_into_their_own_folder_and_resume_it(
    tmp_path: Path,
) -> None:
    """Each pod runs `batchcopy run MANIFEST --shard auto --shards N` (the real parser
    accepts it) into REPORTS/shard-INDEX, a folder no other index uses; a pod started again
    for an index whose folder has a journal resumes that folder."""
    script, env, shards = _indexed_job_script()
    assert re.match(r"exec batchcopy run ", _last_line(script))
    reports = tmp_path / "reports"
    folders = []
    for index in range(shards):
        run = {**env, "REPORTS": str(reports), "JOB_COMPLETION_INDEX": str(index)}
        first = _parsed(_argv_of(script, run, tmp_path))
        assert first["command"] == "run"
        assert str(first["manifest"]) == env["MANIFEST"]
        assert (first["shard"], first["shards"]) == ("auto", shards)
        assert first["resume"] is None
        folders.append(first["report_dir"])
        first["report_dir"].mkdir(parents=True)
        (first["report_dir"] / "journal.jsonl").write_text("")  # the pod was stopped
        again = _parsed(_argv_of(script, run, tmp_path))
        assert again["resume"] == first["report_dir"]
        assert again["report_dir"] is None
        assert (again["shard"], again["shards"]) == ("auto", shards)
    assert folders == [reports / f"shard-{index}" for index in range(shards)]


def test_merge_job_merges_every_shard_folder_of_the_indexed_job(tmp_path: Path) -> None:
    """merge-job.yaml runs `batchcopy merge` (the real parser accepts it) over the folder of
    every index the Indexed Job has, each once, into REPORTS/merged, on the same claim and
    with the manifest where the shards read it (for --allow-missing)."""
    _, shard_env, shards = _indexed_job_script()
    shard_pod = _pod(_by_kind(KUBERNETES / "indexed-job.yaml")["Job"])
    job = _by_kind(KUBERNETES / "merge-job.yaml")["Job"]
    pod = _pod(job)
    (container,) = pod["containers"]
    env = _env_of(container)
    assert int(env["SHARDS"]) == shards
    assert env["REPORTS"] == shard_env["REPORTS"]
    assert pod["restartPolicy"] == "Never"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    claims = {v["name"]: v for v in (*pod["volumes"], *shard_pod["volumes"])}
    for mount in container["volumeMounts"]:
        (same,) = [m for m in shard_pod["containers"][0]["volumeMounts"] if m == mount]
        assert claims[same["name"]]
    assert {v["name"]: v for v in pod["volumes"]} == {
        v["name"]: v for v in shard_pod["volumes"] if v["name"] in claims
    }
    script = _after_dash_c(container["command"])
    assert re.match(r"exec batchcopy merge ", _last_line(script))
    reports = tmp_path / "reports"
    merged = _parsed(_argv_of(script, {**env, "REPORTS": str(reports)}, tmp_path))
    assert merged["command"] == "merge"
    assert merged["directories"] == [reports / f"shard-{index}" for index in range(shards)]
    assert merged["out"] == reports / "merged"
    assert str(merged["manifest"]) == env["MANIFEST"] == shard_env["MANIFEST"]  # refuses others


# AWS Batch's API as botocore knows it: the JSON files are inputs of these operations.
_BATCH_INPUTS = {
    "job-definition.json": "RegisterJobDefinition",
    "submit-job.json": "SubmitJob",
    "submit-merge.json": "SubmitJob",
}


@pytest.mark.parametrize("name", _BATCH_INPUTS)
def test_batch_files_are_valid_inputs_of_the_batch_api(name: str) -> None:
    """Each AWS Batch file is a valid --cli-input-json of its call (register-job-definition,
    submit-job), as botocore's model of the Batch API reads it."""
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("batch")
    shape = model.operation_model(_BATCH_INPUTS[name]).input_shape
    report = ParamValidator().validate(json.loads((BATCH / name).read_text()), shape)
    assert not report.has_errors(), report.generate_report()


def _batch() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return tuple(json.loads((BATCH / name).read_text()) for name in _BATCH_INPUTS)  # type: ignore[return-value]


def test_batch_array_job_is_n_children_that_resume_on_a_shared_file_system() -> None:
    """The array job submits N children of the job definition, which retries a child (its
    host lost, a timeout) but not on exit 1, 2 or 253, runs on a read-only root file system
    and keeps the manifest, the reports and the learned rates on the EFS volume."""
    definition, submit, merge = _batch()
    assert submit["jobDefinition"] == merge["jobDefinition"] == definition["jobDefinitionName"]
    assert submit["arrayProperties"]["size"] >= 2
    assert "arrayProperties" not in merge
    retry = definition["retryStrategy"]
    assert retry["attempts"] >= 2
    exits = {rule["onExitCode"] for rule in retry["evaluateOnExit"] if rule["action"] == "EXIT"}
    assert exits == {"1", "2", "253"}
    container = definition["containerProperties"]
    assert container["readonlyRootFilesystem"] is True
    assert container["jobRoleArn"].startswith("arn:aws:iam::")
    env = {item["name"]: item["value"] for item in container["environment"]}
    volumes = {volume["name"]: volume for volume in container["volumes"]}
    mounts = {m["containerPath"]: volumes[m["sourceVolume"]] for m in container["mountPoints"]}

    def volume_of(path: str) -> dict[str, Any]:
        (found,) = [v for mount, v in mounts.items() if Path(path).is_relative_to(mount)]
        return found

    for variable in ("MANIFEST", "REPORTS", "BATCHCOPY_RATE_STATE"):
        assert volume_of(env[variable])["efsVolumeConfiguration"]["fileSystemId"], variable
    assert "efsVolumeConfiguration" not in volume_of("/tmp")  # noqa: S108 (a mount path)
    assert not any(name.startswith("AWS_BATCH") for name in env)  # Batch's own, reserved


def test_batch_children_run_their_shard_into_their_own_folder_and_resume_it(
    tmp_path: Path,
) -> None:
    """Each child runs `batchcopy run MANIFEST --shard auto` (the real parser accepts it;
    Batch gives the index and the size) into REPORTS/shard-INDEX; a child Batch runs again
    resumes that folder."""
    definition, submit, _ = _batch()
    container = definition["containerProperties"]
    (script,) = container["command"]
    assert re.match(r"exec batchcopy run ", _last_line(script))
    env = {item["name"]: item["value"] for item in container["environment"]}
    size = submit["arrayProperties"]["size"]
    reports = tmp_path / "reports"
    folders = []
    for index in range(size):
        batch = {"AWS_BATCH_JOB_ARRAY_INDEX": str(index), "AWS_BATCH_JOB_ARRAY_SIZE": str(size)}
        run = {**env, **batch, "REPORTS": str(reports)}
        first = _parsed(_argv_of(script, run, tmp_path))
        assert first["command"] == "run"
        assert str(first["manifest"]) == env["MANIFEST"]
        assert (first["shard"], first["shards"]) == ("auto", None)
        folders.append(first["report_dir"])
        first["report_dir"].mkdir(parents=True)
        (first["report_dir"] / "journal.jsonl").write_text("")
        again = _parsed(_argv_of(script, run, tmp_path))
        assert again["resume"] == first["report_dir"]
        assert again["report_dir"] is None
    assert folders == [reports / f"shard-{index}" for index in range(size)]


def test_batch_merge_merges_every_child_folder(tmp_path: Path) -> None:
    """The merge job runs `batchcopy merge` (the real parser accepts it) over the folder of
    every child of the array job, each once, into REPORTS/merged."""
    definition, submit, merge = _batch()
    container = definition["containerProperties"]
    env = {item["name"]: item["value"] for item in container["environment"]}
    overrides = merge["containerOverrides"]
    env |= {item["name"]: item["value"] for item in overrides["environment"]}
    size = submit["arrayProperties"]["size"]
    assert int(env["SHARDS"]) == size
    (script,) = overrides["command"]
    assert re.match(r"exec batchcopy merge ", _last_line(script))
    reports = tmp_path / "reports"
    merged = _parsed(_argv_of(script, {**env, "REPORTS": str(reports)}, tmp_path))
    assert merged["command"] == "merge"
    assert merged["directories"] == [reports / f"shard-{index}" for index in range(size)]
    assert merged["out"] == reports / "merged"
    assert merged["manifest"] is not None  # the children's: folders of another are refused


def _fleet(
    engine: str,
) -> tuple[str, str, dict[str, str], int, Callable[[int, int], dict[str, str]]]:
    """An engine's shard script, merge script, variables, shard count, and the variables
    the engine gives shard I of N."""
    if engine == "kubernetes":
        script, env, shards = _indexed_job_script()
        (merge,) = _pod(_by_kind(KUBERNETES / "merge-job.yaml")["Job"])["containers"]
        return (
            script,
            _after_dash_c(merge["command"]),
            env,
            shards,
            lambda i, n: {"JOB_COMPLETION_INDEX": str(i)},
        )
    definition, submit, merge_job = _batch()
    container = definition["containerProperties"]
    env = {item["name"]: item["value"] for item in container["environment"]}
    env |= {item["name"]: item["value"] for item in merge_job["containerOverrides"]["environment"]}
    (script,) = container["command"]
    (merge_script,) = merge_job["containerOverrides"]["command"]
    return (
        script,
        merge_script,
        env,
        submit["arrayProperties"]["size"],
        lambda i, n: {"AWS_BATCH_JOB_ARRAY_INDEX": str(i), "AWS_BATCH_JOB_ARRAY_SIZE": str(n)},
    )


@pytest.mark.parametrize("engine", ["kubernetes", "aws-batch"])
async def test_fleet_example_shards_copy_every_job_once_and_merge_into_one_report(
    tmp_path: Path, engine: str
) -> None:
    """The example's own scripts, run as its engine runs them (every shard at once, then the
    merge) against the emulator seeded with seed.json: every job of the manifest is copied
    once, by one shard, and the merged report has each of its rows once; a shard started
    again resumes its folder and sends no copy twice."""
    script, merge, variables, shards, engine_env = _fleet(engine)
    scripts = Path(sys.executable).parent
    assert (scripts / "batchcopy").exists(), "the package is installed in this environment"
    manifest = batchcopy.load_manifest(EXAMPLES / "manifest.csv")
    reports = tmp_path / "reports"
    emulator = build_emulator(seed=SEED)
    async with running_emulator(emulator) as url:
        env = {
            **os.environ,
            **variables,
            "PATH": os.pathsep.join([str(scripts), "/usr/bin", "/bin"]),
            "MANIFEST": str(EXAMPLES / "manifest.csv"),
            "REPORTS": str(reports),
            "BATCHCOPY_RATE_STATE": str(tmp_path / "rates.json"),
            "AWS_ENDPOINT_URL_LIGHTSAIL": url,
        }

        async def shard(index: int) -> None:
            done = await anyio.run_process(
                ["/bin/sh", "-c", script], env={**env, **engine_env(index, shards)}, check=False
            )
            assert done.returncode == 0, done.stderr.decode()

        async with anyio.create_task_group() as group:
            for index in range(shards):
                group.start_soon(shard, index)
        await shard(0)  # started again: resumes its folder
        merged = await anyio.run_process(["/bin/sh", "-c", merge], env=env, check=False)
    assert merged.returncode == 0, merged.stderr.decode()
    assert sorted(emulator.stats.copies_accepted.values()) == [1] * manifest.total
    rows = [
        json.loads(line) for line in (reports / "merged/results.jsonl").read_text().splitlines()
    ]
    assert sorted(row["target_snapshot_name"] for row in rows) == sorted(
        job.target_snapshot_name for job in manifest.jobs()
    )
    assert {row["status"] for row in rows} == {"started"}
    assert _runs(reports / "shard-0") == [False, True]
