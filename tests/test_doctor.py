"""`batchcopy doctor`: credentials through STS (moto), Lightsail per region (the emulator),
the report folder; OK or FAIL with a fix per check, exit 0 only when all are OK."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from batchcopy.doctor import run_checks
from batchcopy.emulator import Emulator, FaultConfig
from batchcopy.lightsail import sts_endpoint
from batchcopy.settings import Settings
from tests.helpers import GOOD_ROWS, EmulatorProcess, run_cli, settings_for, write_manifest

ACCOUNT = "123456789012"  # moto's default account


@pytest.fixture(scope="module")
def sts() -> Iterator[str]:
    """moto's STS on 127.0.0.1, shared by the module."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _sts_endpoint(_no_real_aws: None, sts: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts)


class _Refusing(BaseHTTPRequestHandler):
    """Answers every Lightsail call as AWS does when the policy does not allow it."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(
            {
                "__type": "AccessDeniedException",
                "message": "User: arn:aws:iam::123456789012:user/ci is not authorized to "
                "perform: lightsail:GetInstanceSnapshots",
            }
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def refusing() -> Iterator[str]:
    """A Lightsail endpoint on 127.0.0.1 that refuses every call with AccessDeniedException."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def doctor(*args: str, cwd: Path) -> tuple[int, dict[str, str], str]:
    """Run `batchcopy doctor`; exit code, each check's line by its name, and stderr."""
    done = run_cli("doctor", *args, cwd=cwd)
    lines = {}
    for line in done.stdout.splitlines():
        status, rest = line.split(None, 1)
        assert status in ("OK", "FAIL"), done.stdout
        lines[rest.partition(":")[0]] = line
    return done.returncode, lines, done.stderr


def test_all_checks_ok_show_the_account_and_no_secret(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """With working credentials and endpoint every line says OK with the account, exit 0,
    and no access key or secret appears; AWS_ENDPOINT_URL_STS (moto) takes STS's call."""
    code, lines, stderr = doctor("--endpoint-url", live.url, "--region", "eu-west-1", cwd=tmp_path)
    assert code == 0, (lines, stderr)
    assert list(lines) == ["credentials", "lightsail eu-west-1", "report folder"]
    assert all(line.startswith("OK ") for line in lines.values())
    assert f"account {ACCOUNT}" in lines["credentials"]
    assert f"arn:aws:sts::{ACCOUNT}:" in lines["credentials"]
    assert live.url in lines["lightsail eu-west-1"]
    assert str(tmp_path.resolve()) in lines["report folder"]
    everything = "\n".join(lines.values()) + stderr
    assert "emulator-secret" not in everything
    assert "AKIDEXAMPLE" not in everything
    assert live.stats()["requests"] == {"eu-west-1": {"GetInstanceSnapshots": {"ok": 1}}}
    assert list(tmp_path.iterdir()) == []  # the folder probe leaves nothing behind


@pytest.mark.parametrize("how", ["--endpoint-url", "AWS_ENDPOINT_URL_LIGHTSAIL"])
def test_doctor_can_be_rehearsed_against_the_emulator_alone(
    live: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The emulator answers STS GetCallerIdentity too: with only Lightsail's endpoint at it
    (no AWS_ENDPOINT_URL_STS), the identity check goes there and every check passes."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS")
    args = ["--region", "eu-west-1"]
    if how == "--endpoint-url":
        args += ["--endpoint-url", live.url]
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LIGHTSAIL", live.url)
    code, lines, stderr = doctor(*args, cwd=tmp_path)
    assert code == 0, (lines, stderr)
    assert "account 123456789012, arn:aws:iam::123456789012:user/emulator" in lines["credentials"]
    assert live.stats()["requests"]["us-east-1"]["GetCallerIdentity"] == {"ok": 1}


def test_sts_at_a_lightsail_endpoint_that_does_not_answer_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without AWS_ENDPOINT_URL_STS, STS is asked at --endpoint-url; when nothing answers
    there, the credentials check names that endpoint and AWS_ENDPOINT_URL_STS as the fix."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS")
    endpoint = f"http://127.0.0.1:{closed_port()}"
    code, lines, stderr = doctor("--endpoint-url", endpoint, "--region", "eu-west-1", cwd=tmp_path)
    assert code == 1
    line = lines["credentials"]
    assert line.startswith("FAIL ")
    assert f"STS GetCallerIdentity at {endpoint} failed" in line
    assert "fix: " in line
    assert "set AWS_ENDPOINT_URL_STS" in line.partition("fix: ")[2]
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("endpoint", "sts_env", "expected"),
    [
        ("http://127.0.0.1:8099", None, "http://127.0.0.1:8099"),
        ("http://127.0.0.1:8099", "http://127.0.0.1:9000", None),  # botocore reads it
        ("https://lightsail.eu-west-1.amazonaws.com", None, None),
        (None, None, None),
    ],
    ids=["own endpoint", "STS variable wins", "AWS's own endpoint", "no endpoint"],
)
def test_sts_follows_lightsails_endpoint_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, endpoint: str | None, sts_env: str | None, expected: str | None
) -> None:
    """STS goes to a Lightsail endpoint of one's own, but never over AWS_ENDPOINT_URL_STS
    and never to an amazonaws.com Lightsail endpoint, which does not answer STS."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS")
    if sts_env:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts_env)
    assert sts_endpoint(Settings(endpoint_url=endpoint)) == expected


@pytest.mark.parametrize("how", ["no keys", "unknown profile"])
def test_missing_credentials_fail_with_a_fix(
    live: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """No credentials, or a profile that does not exist: the credentials check fails with
    what to do, exit 1, and no traceback."""
    extra = []
    if how == "no keys":
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    else:
        extra = ["--profile", "nope"]
    code, lines, stderr = doctor("--endpoint-url", live.url, *extra, cwd=tmp_path)
    assert code == 1
    assert lines["credentials"].startswith("FAIL ")
    assert "aws configure" in lines["credentials"]
    assert "aws sso login" in lines["credentials"]
    if how == "unknown profile":
        assert "nope" in lines["credentials"]
    assert lines["report folder"].startswith("OK ")
    assert "Traceback" not in stderr


def test_a_region_that_does_not_answer_fails_naming_the_endpoint(tmp_path: Path) -> None:
    """An endpoint nothing listens on fails its region's check, naming the endpoint."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    code, lines, _ = doctor("--endpoint-url", endpoint, "--region", "eu-west-2", cwd=tmp_path)
    assert code == 1
    line = lines["lightsail eu-west-2"]
    assert line.startswith("FAIL ")
    assert f"cannot connect to {endpoint}" in line
    assert "fix: " in line
    assert lines["credentials"].startswith("OK ")


def test_access_denied_names_the_lightsail_action_to_grant(refusing: str, tmp_path: Path) -> None:
    """AccessDenied for the read fails the region with the lightsail: action to grant."""
    code, lines, _ = doctor("--endpoint-url", refusing, "--region", "ap-south-1", cwd=tmp_path)
    assert code == 1
    line = lines["lightsail ap-south-1"]
    assert line.startswith("FAIL ")
    assert "AccessDeniedException" in line
    assert "grant lightsail:GetInstanceSnapshots" in line


def _report_line(live: EmulatorProcess, cwd: Path, *args: str) -> str:
    """The report folder check's line of a doctor run in ``cwd``."""
    _, lines, stderr = doctor("--endpoint-url", live.url, "--region", "eu-west-1", *args, cwd=cwd)
    assert "Traceback" not in stderr
    return lines["report folder"]


def test_the_default_checks_a_new_report_folder_can_be_made_here(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """Without --report-dir, doctor checks that a run could make its new report folder in
    the current folder, and leaves nothing there."""
    line = _report_line(live, tmp_path)
    assert line.startswith("OK ")
    assert f"a new report folder can be made in {tmp_path.resolve()}" in line
    assert list(tmp_path.iterdir()) == []


def test_report_dir_is_the_report_folder_itself_as_in_run(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """--report-dir names the report folder itself, as in `run`: a new one passes if it can
    be made (and doctor does not make it); an existing empty one passes if writable."""
    new = tmp_path / "migration-1"
    line = _report_line(live, tmp_path, "--report-dir", str(new))
    assert line.startswith("OK ")
    assert f"{new} can be made in {tmp_path}" in line
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a probe is left
    deeper = tmp_path / "reports" / "2026-11-21"  # run makes missing parents too
    assert _report_line(live, tmp_path, "--report-dir", str(deeper)).startswith("OK ")
    assert list(tmp_path.iterdir()) == []
    new.mkdir()
    line = _report_line(live, tmp_path, "--report-dir", str(new))
    assert line.startswith("OK ")
    assert f"{new} is writable" in line
    assert list(new.iterdir()) == []


def test_a_report_folder_holding_a_journal_fails_as_run_would(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """A --report-dir that holds another run's journal fails, saying to resume it, just as
    `run --report-dir` refuses it with exit 2 before any request."""
    manifest = write_manifest(tmp_path / "jobs.csv", GOOD_ROWS[:1])
    used = tmp_path / "migration-1"
    used.mkdir()
    (used / "journal.jsonl").write_text("")
    line = _report_line(live, tmp_path, "--report-dir", str(used))
    assert line.startswith("FAIL ")
    assert f"{used} already holds a run's journal" in line
    assert f"fix: resume it with --resume {used}" in line
    done = run_cli(
        "run", str(manifest), "--endpoint-url", live.url, "--report-dir", str(used), cwd=tmp_path
    )
    assert done.returncode == 2
    assert f"{used} already holds a run's journal" in done.stderr
    assert "CopySnapshot" not in json.dumps(live.stats()["requests"])


@pytest.mark.parametrize("kind", ["file", "file's child", "symlink"])
def test_a_report_dir_run_cannot_use_fails_with_a_fix(
    live: EmulatorProcess, tmp_path: Path, kind: str
) -> None:
    """A --report-dir that is a file, lies under a file, or is a symbolic link fails with
    what to do, and nothing is created."""
    blocker = tmp_path / "taken"
    blocker.write_text("")
    target = {"file": blocker, "file's child": blocker / "reports", "symlink": tmp_path / "link"}
    if kind == "symlink":
        (tmp_path / "real").mkdir()
        target[kind].symlink_to(tmp_path / "real")
    before = sorted(tmp_path.rglob("*"))
    line = _report_line(live, tmp_path, "--report-dir", str(target[kind]))
    assert line.startswith("FAIL ")
    assert "fix: " in line
    assert {"file": "not a folder", "file's child": "not a folder", "symlink": "symbolic link"}[
        kind
    ] in line
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
@pytest.mark.parametrize("inside", [False, True], ids=["the folder", "its parent"])
def test_a_read_only_report_folder_fails(
    live: EmulatorProcess, tmp_path: Path, inside: bool
) -> None:
    """A report folder, or the parent a new one would be made in, without write permission
    fails, saying the report cannot be written there."""
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    target = folder / "new" if inside else folder
    try:
        code, lines, _ = doctor(
            "--endpoint-url", live.url, "--report-dir", str(target), cwd=tmp_path
        )
    finally:
        folder.chmod(0o700)
    assert code == 1
    assert lines["report folder"].startswith("FAIL ")
    assert f"{folder}: cannot write the report here" in lines["report folder"]


def test_the_manifest_regions_are_the_ones_checked(live: EmulatorProcess, tmp_path: Path) -> None:
    """With a manifest, every source and target region it names is checked, once each."""
    manifest = write_manifest(tmp_path / "jobs.csv", GOOD_ROWS)
    code, lines, stderr = doctor(str(manifest), "--endpoint-url", live.url, cwd=tmp_path)
    assert code == 0, (lines, stderr)
    regions = {"us-east-1", "eu-central-1", "eu-west-1", "ap-south-1", "us-west-2"}
    assert {name for name in lines if name.startswith("lightsail ")} == {
        f"lightsail {r}" for r in regions
    }
    assert "5 jobs, valid" in lines["manifest"]
    requests = live.stats()["requests"]
    assert {r: requests[r]["GetInstanceSnapshots"] for r in requests} == {
        r: {"ok": 1} for r in regions
    }


def test_an_invalid_manifest_fails_and_the_other_checks_still_run(
    live: EmulatorProcess, tmp_path: Path
) -> None:
    """A manifest that fails validation is a FAIL quoting its first problem with file:line;
    credentials, the --region given and the report folder are still checked."""
    manifest = write_manifest(tmp_path / "jobs.csv", [*GOOD_ROWS, "us-east-1,eu-west-1,,,,,x"])
    code, lines, _ = doctor(
        str(manifest), "--endpoint-url", live.url, "--region", "eu-west-1", cwd=tmp_path
    )
    assert code == 1
    assert lines["manifest"].startswith("FAIL ")
    assert f"{manifest}:7:" in lines["manifest"]
    assert "batchcopy validate" in lines["manifest"]
    assert [name for name, line in lines.items() if line.startswith("OK ")] == [
        "credentials",
        "lightsail eu-west-1",
        "report folder",
    ]


def test_json_output_lists_every_check(live: EmulatorProcess, tmp_path: Path) -> None:
    """--json prints the checks as a JSON document with an overall ok."""
    done = run_cli(
        "doctor", "--endpoint-url", live.url, "--region", "us-west-2", "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["ok"] is True
    assert [c["name"] for c in body["checks"]] == [
        "credentials",
        "lightsail us-west-2",
        "report folder",
    ]
    assert all(c["ok"] and c["fix"] == "" for c in body["checks"])


@pytest.mark.parametrize(
    ("faults", "ok", "words"),
    [
        ({"read_rate": 0.001, "read_burst": 0.5}, True, "throttled"),
        ({"error_rate": 1.0}, False, "try again later"),
    ],
    ids=["throttled", "5xx"],
)
async def test_a_throttled_or_failing_region_is_tried_once_more(
    emulator: Emulator,
    url: str,
    tmp_path: Path,
    faults: dict[str, Any],
    ok: bool,
    words: str,
) -> None:
    """A throttled read is asked again once and then passes with a note; a 5xx twice fails."""
    emulator.configure(FaultConfig.from_json({"regions": {"us-east-1": faults}}))
    checks = await run_checks(
        settings_for(url), regions=["us-east-1"], report_dir=tmp_path, retry_pause=0
    )
    region = next(c for c in checks if c.name == "lightsail us-east-1")
    assert region.ok is ok
    assert words in str(region)
    requests = emulator.stats.requests
    assert sum(n for (r, a, _), n in requests.items() if a == "GetInstanceSnapshots") == 2


async def test_a_region_that_answers_too_late_fails_with_the_timeout(tmp_path: Path) -> None:
    """A region slower than the per-check limit fails, saying it gave no answer in time."""
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        checks = await run_checks(
            settings_for(endpoint), regions=["eu-west-1"], report_dir=tmp_path, per_check=0.05
        )
    region = next(c for c in checks if c.name == "lightsail eu-west-1")
    assert not region.ok
    assert f"no answer from {endpoint} within 0.05 s" in region.detail
    assert "--timeout" in region.fix
