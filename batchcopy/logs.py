"""Logging: levels, text or JSON Lines, and redaction of every record on every handler.

botocore's debug logging prints request headers, including the ``Authorization`` header
(access key, signature) and ``X-Amz-Security-Token``, and its signer prints the canonical
request, the string to sign and the signature, each on the lines after a heading. Every
record is redacted whole — its message with the arguments filled in, however many lines it
has, its exception and stack — before a handler writes it, and the formatters redact what
they produce once more, so no credential, signature or session token reaches a terminal, a
log file or a CI log, at any verbosity.

Messages that are not log records but go to stderr during a run (progress lines, signal
notices, errors at exit) go through :func:`say`, which writes them in the log format chosen:
with JSON logs, stderr is pure JSON Lines.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

__all__ = [
    "Redactor",
    "json_record",
    "make_handler",
    "redact",
    "say",
    "setup_logging",
    "stderr_format",
    "use_stderr_format",
]

REDACTED = "[redacted]"
# A value is redacted once: a value that already is the mark is left alone, so two patterns
# (or two passes) over one field never leave pieces like [redacted]'[redacted]'.
_VALUE = r"(?!\[redacted\])"
# Between a field's name and its value: a quote, a colon or equals sign, a bytes prefix.
# Possessive, so that a value already redacted is not matched again from a shorter prefix.
_IS = r"""['\"]?+\s*+[:=]\s*+b?+['\"]?+"""
_PATTERNS = [
    # Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...
    re.compile(r"(?i)(['\"]?authorization" + _IS + ")" + _VALUE + r"[^'\"\n]+"),
    re.compile(r"(?i)(x-amz-security-token" + _IS + ")" + _VALUE + r"[^'\"\s,}]+"),
    # Signature=hex in a header or URL, and botocore's "Signature:" with the hex below it.
    re.compile(r"(?i)((?:x-amz-)?signature" + _IS + ")" + _VALUE + r"[0-9a-f]+"),
    re.compile(r"(?i)(credential\s*+=\s*+)" + _VALUE + r"[^,\s'\"]+"),
    re.compile(
        r"(?i)((?:aws_)?(?:secret_?access_?key|session_?token|security_?token|secret_?key|token)"
        + _IS
        + ")"
        + _VALUE
        + r"[^'\"\s,}<]+"
    ),
    # XML bodies (STS): <SecretAccessKey>...</SecretAccessKey>, <SessionToken>...
    re.compile(r"(?i)(<(?:SecretAccessKey|SessionToken)>)" + _VALUE + r"[^<]+"),
    # A run of 64 hex digits is what a SigV4 signature (or signing key) looks like, wherever
    # it stands; a payload hash looks the same and is no loss.
    re.compile(r"()(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])"),
    # A user:password@ in a URL (an endpoint or proxy given by hand): the host is kept.
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)" + _VALUE + r"[^/\s@'\"<>]+(?=@)"),
    # Access key ids on their own (AKIA... long-term, ASIA... temporary).
    re.compile(r"()\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b"),
]
_SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ACCESS_KEY_ID",
)
# Loggers of request signing: everything after a record's heading ("Signature:",
# "StringToSign:", "CanonicalRequest:") is signing material, whatever it looks like.
_SIGNING_LOGGERS = frozenset({"botocore.auth", "aiobotocore.auth"})
_HEADING = re.compile(r"[:\n]")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with credentials, signatures and tokens replaced by ``[redacted]``."""
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def _env_secrets() -> tuple[str, ...]:
    return tuple(v for k in _SECRET_ENV if (v := os.environ.get(k)))


class Redactor(logging.Filter):
    """Rewrites each record whole — the message with its arguments, on all its lines, the
    exception, the stack and any structured fields — with secrets removed.

    Besides the patterns, the values of the AWS credential environment variables are
    removed wherever they appear, and a signing logger's record keeps only its heading."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets = _env_secrets()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.name in _SIGNING_LOGGERS and (cut := _HEADING.search(text)):
            text = text[: cut.end()] + ("\n" if cut.group() == "\n" else " ") + REDACTED
        record.msg = redact(text, self._secrets)
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            record.fields = _redact_values(fields, self._secrets)
        return True


def _redact_values(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {k: _redact_values(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_values(v, secrets) for v in value]
    return value


def json_record(
    message: str,
    *,
    level: str = "info",
    logger: str = "batchcopy",
    created: float | None = None,
    fields: Mapping[str, Any] | None = None,
) -> str:
    """One JSON Lines record, the shape every JSON log line has: time, level, logger,
    message, then ``fields``; redacted."""
    body: dict[str, Any] = {
        "time": round(time.time() if created is None else created, 3),
        "level": level,
        "logger": logger,
        "message": message,
    }
    body.update(fields or {})
    return json.dumps(_redact_values(body, _env_secrets()), ensure_ascii=False)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "fields", {}))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            fields["exception"] = record.exc_text
        if record.stack_info:
            fields["stack"] = record.stack_info
        return json_record(
            record.getMessage(),
            level=record.levelname.lower(),
            logger=record.name,
            created=record.created,
            fields=fields,
        )


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.converter = time.gmtime
        self._secrets = _env_secrets()

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


def make_handler(stream: IO[str], fmt: str = "text") -> logging.Handler:
    """A handler writing redacted records to ``stream`` as text or JSON Lines (``fmt``)."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(Redactor())
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    return handler


# The log format stderr speaks, set by setup_logging: say() writes in it.
_stderr_format = "text"


def stderr_format() -> str:
    """The log format setup_logging chose ("text" unless it chose "json")."""
    return _stderr_format


def use_stderr_format(fmt: str) -> None:
    """Speak ``fmt`` ("text" or "json") on stderr from now on, before logging is set up:
    errors in a command's options come before it."""
    global _stderr_format
    _stderr_format = "json" if fmt == "json" else "text"


def say(
    message: str,
    *,
    level: str = "info",
    logger: str = "batchcopy",
    fields: Mapping[str, Any] | None = None,
) -> None:
    """Write a message that is not a log record (progress, a notice, an error at exit) to
    stderr: as it is with text logs; with JSON logs as a JSON record carrying ``fields``."""
    if _stderr_format == "json":
        line = json_record(message, level=level, logger=logger, fields=fields)
    else:
        line = message
    stream = sys.stderr
    if stream is None:  # started with stderr closed (2>&-)
        return
    try:
        print(line, file=stream, flush=True)
    except OSError:
        # Whoever read stderr went away (a log pipe that died): the copies go on, unseen.
        # Later writes, and Python's last flush at exit, go to nowhere.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def setup_logging(
    *, verbose: int = 0, debug: bool = False, fmt: str = "text", file: Path | None = None
) -> None:
    """Configure the root logger: ``verbose`` 1 is info, 2 is debug for batchcopy;
    ``debug`` also turns on botocore's and aiobotocore's debug logs. Logs go to stderr (or
    ``file``), in ``fmt`` text or json."""
    level = (
        logging.WARNING
        if not verbose and not debug
        else logging.INFO
        if verbose == 1
        else logging.DEBUG
    )
    stream: IO[str] = sys.stderr
    if file is not None:
        fd = os.open(
            file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600
        )
        stream = os.fdopen(fd, "a", encoding="utf-8")
    use_stderr_format(fmt)
    handler = make_handler(stream, fmt)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("batchcopy").setLevel(level)
    for name in ("botocore", "aiobotocore", "urllib3", "aiohttp"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
