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
    and no access key or secret appears."""
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
    assert live.stats()["requests"]["eu-west-1"]["GetInstanceSnapshots"] == {"ok": 1}
    assert list(tmp_path.iterdir()) == []  # the folder probe leaves nothing behind


def test_doctor_can_be_rehearsed_against_the_emulator_alone(
    live: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator answers STS GetCallerIdentity too: with AWS_ENDPOINT_URL_STS and
    --endpoint-url both at it, every check passes without any AWS service."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", live.url)
    code, lines, stderr = doctor("--endpoint-url", live.url, "--region", "eu-west-1", cwd=tmp_path)
    assert code == 0, (lines, stderr)
    assert "account 123456789012, arn:aws:iam::123456789012:user/emulator" in lines["credentials"]
    assert live.stats()["requests"]["us-east-1"]["GetCallerIdentity"] == {"ok": 1}


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


def test_a_missing_report_folder_fails(live: EmulatorProcess, tmp_path: Path) -> None:
    """A --report-dir that does not exist fails with how to create it, and is not created."""
    missing = tmp_path / "reports"
    code, lines, _ = doctor("--endpoint-url", live.url, "--report-dir", str(missing), cwd=tmp_path)
    assert code == 1
    assert lines["report folder"].startswith("FAIL ")
    assert f"mkdir -p {missing}" in lines["report folder"]
    assert not missing.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
def test_a_read_only_report_folder_fails(live: EmulatorProcess, tmp_path: Path) -> None:
    """A report folder without write permission fails, saying it is not writable."""
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    try:
        code, lines, _ = doctor(
            "--endpoint-url", live.url, "--report-dir", str(folder), cwd=tmp_path
        )
    finally:
        folder.chmod(0o700)
    assert code == 1
    assert lines["report folder"].startswith("FAIL ")
    assert "not writable" in lines["report folder"]


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
