"""Safety of what batchcopy writes: no secrets anywhere, inert CSV cells, private files."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from batchcopy import logs
from batchcopy.jobs import CopyJob, JobResult, Status
from batchcopy.logs import redact
from batchcopy.report import ReportWriter
from tests.helpers import GOOD_ROWS, EmulatorProcess, run_cli, write_manifest

ACCESS_KEY = "AKIAFAKEFAKEFAKE12345"
SECRET_KEY = "FakeSecretKeyValue/DoNotLeak+9876543210"
SESSION_TOKEN = "FakeSessionTokenValueDoNotLeak0123456789"


# What a leak looks like in a log line: a SigV4 signature (64 hex digits, also printed alone
# on the line after botocore's "Signature:"), or a credential, signature or token field whose
# value is anything but the redaction mark.
LEAKS = re.compile(
    r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])"
    r"|(?i:signature|credential|security-token|session_?token)['\"]?+\s*+[:=]\s*+b?+['\"]?+"
    r"(?!\[redacted\])[^\s'\",}]"
    r"|\[redacted\]'\[redacted\]'"
)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_in_any_output_even_with_debug_logs(
    server: EmulatorProcess, tmp_path: Path, log_format: str
) -> None:
    """With -vv --debug and a session token, no key, secret, session token or signature
    appears in stdout, stderr, the log file, the journal or the report, and each secret is
    redacted once, not in pieces."""
    server.control("POST", "reset")
    server.control("POST", "config", {"seed": 1, "error_rate": 0.2, "drop_after_rate": 0.2})
    report = tmp_path / "report"
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
    }
    manifest = write_manifest(tmp_path / "m.csv", GOOD_ROWS)
    outputs = []
    for log_file in (None, tmp_path / "batchcopy.log"):
        target = report if log_file is None else tmp_path / "report2"
        extra = ["--log-file", str(log_file)] if log_file else []
        done = run_cli(
            "run",
            str(manifest),
            "--endpoint-url",
            server.url,
            "--report-dir",
            str(target),
            "-vv",
            "--debug",
            "--log-format",
            log_format,
            *extra,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        outputs += [done.stdout, done.stderr]
        server.control("POST", "reset")
    logged = (tmp_path / "batchcopy.log").read_text()
    assert "botocore.auth" in logged  # debug logging of the signing really was on
    assert "[redacted]" in logged
    files = [p.read_text() for folder in (report, tmp_path / "report2") for p in folder.iterdir()]
    for text in [*outputs, logged, *files]:
        for secret in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN):
            assert secret not in text
    for text in [*outputs, logged]:
        for line in text.splitlines():
            assert not LEAKS.search(line), line


def test_redactor_covers_multi_line_records_and_signing_logs() -> None:
    """botocore's signing records (the signature on its own line, the string to sign) and
    any multi-line message lose their secrets, in text and JSON formats alike."""
    signature = "0123456789abcdef" * 4
    records = [
        ("botocore.auth", "Signature:\n%s", (signature,)),
        (
            "botocore.auth",
            "StringToSign:\n%s",
            (f"AWS4-HMAC-SHA256\n20261126T000000Z\n{signature}",),
        ),
        ("botocore.endpoint", "Sending:\n%s", ({"X-Amz-Security-Token": b"tokenvalue123"},)),
        ("botocore.parsers", "Response body:\n%s", ('{"SecretAccessKey": "shh12345678"}',)),
    ]
    for fmt in ("text", "json"):
        stream = io.StringIO()
        handler = logs.make_handler(stream, fmt)
        for name, msg, args in records:
            record = logging.LogRecord(name, logging.DEBUG, __file__, 1, msg, args, None)
            handler.handle(record)
        written = stream.getvalue()
        for secret in (signature, "tokenvalue123", "shh12345678"):
            assert secret not in written, written
        assert "[redacted]'[redacted]'" not in written
        assert "Signature:" in written  # what the record was about is still readable


def test_redact_covers_header_dicts_and_free_text() -> None:
    """Header dicts as botocore logs them and key=value text both lose their secrets."""
    line = (
        "{'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEEXAMPLE12/20261126/"
        "eu-west-1/lightsail/aws4_request, SignedHeaders=host, Signature=abc123def',"
        " 'X-Amz-Security-Token': b'tokenvalue123'} aws_secret_access_key=shh12345678"
    )
    cleaned = redact(line)
    for secret in ("AKIAEXAMPLEEXAMPLE12", "abc123def", "tokenvalue123", "shh12345678"):
        assert secret not in cleaned


def test_csv_cells_cannot_run_as_formulas(tmp_path: Path) -> None:
    """A cell starting with = + - @ tab or CR is neutralised in results.csv, raw in JSON."""
    job = CopyJob(
        line=2,
        source_region="us-east-1",
        target_region="eu-west-1",
        source_snapshot_name="s1-x",
        target_snapshot_name="t1-x",
    )
    writer = ReportWriter(tmp_path, manifest="m", manifest_sha256="0" * 64, total=1)
    evil = '=HYPERLINK("http://example.invalid","x")'
    writer.add(JobResult(job=job, status=Status.FAILED, error_code="@SUM(1)", error_message=evil))
    writer.finish()
    with (tmp_path / "results.csv").open(newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["error_message"] == "'" + evil
    assert row["error_code"] == "'@SUM(1)"
    (raw,) = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert raw["error_message"] == evil


def test_report_files_are_private(server: EmulatorProcess, tmp_path: Path) -> None:
    """summary.json, results.* and the journal are created mode 0600."""
    server.control("POST", "reset")
    report = tmp_path / "r"
    done = run_cli(
        "run",
        str(write_manifest(tmp_path / "m.csv", GOOD_ROWS[:1])),
        "--endpoint-url",
        server.url,
        "--report-dir",
        str(report),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    for name in ("summary.json", "results.csv", "results.jsonl", "journal.jsonl"):
        assert stat.S_IMODE((report / name).stat().st_mode) == 0o600, name


@pytest.mark.parametrize("link", ["folder", "results.csv", "summary.json"])
def test_symlinked_output_is_refused_before_any_request(
    server: EmulatorProcess, tmp_path: Path, link: str
) -> None:
    """A report folder or report file that is a symlink is refused, with no request sent."""
    server.control("POST", "reset")
    real = tmp_path / "real"
    real.mkdir()
    report = tmp_path / "r"
    if link == "folder":
        report.symlink_to(real)
    else:
        report.mkdir()
        (report / link).symlink_to(real / link)
    done = run_cli(
        "run",
        str(write_manifest(tmp_path / "m.csv", GOOD_ROWS[:1])),
        "--endpoint-url",
        server.url,
        "--report-dir",
        str(report),
        "--quiet",
    )
    assert done.returncode == 2
    assert "symbolic link" in done.stderr
    assert server.control("GET", "stats")["requests_total"] == 0
    assert not list(real.iterdir())


def _fill(path: Path) -> None:
    """Write until the file system is full (raises OSError ENOSPC)."""
    with path.open("wb") as handle:
        while True:
            handle.write(b"x" * 4096)
            handle.flush()


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0 or sys.platform != "linux", reason="needs root to mount")
@pytest.mark.parametrize("kind", ["read-only", "full"])
def test_read_only_or_full_report_folder_is_refused_before_any_request(
    server: EmulatorProcess, tmp_path: Path, kind: str
) -> None:
    """A report folder on a read-only or full file system is refused before any API call."""
    server.control("POST", "reset")
    mount = tmp_path / "mnt"
    if not _mount_tmpfs(mount, "ro,size=1m" if kind == "read-only" else "size=64k"):
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        if kind == "full":
            with pytest.raises(OSError, match="space"):
                _fill(mount / "filler")
        done = run_cli(
            "run",
            str(write_manifest(tmp_path / "m.csv", GOOD_ROWS[:1])),
            "--endpoint-url",
            server.url,
            "--report-dir",
            str(mount / "report"),
            "--quiet",
        )
        assert done.returncode == 2, done.stderr
        assert "cannot write the report" in done.stderr
        assert server.control("GET", "stats")["requests_total"] == 0
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_redact_removes_a_password_in_a_url() -> None:
    """A user:password@ in any URL in a log line (an endpoint, a proxy) is redacted, the
    host and the rest of the line kept."""
    line = "calling http://ops:hunter2@127.0.0.1:9/x and https://tok@proxy.example"
    said = redact(line)
    assert "hunter2" not in said
    assert "ops:" not in said
    assert "tok@" not in said
    assert said == "calling http://[redacted]@127.0.0.1:9/x and https://[redacted]@proxy.example"
