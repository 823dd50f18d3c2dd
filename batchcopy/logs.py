"""Logging: levels, text or JSON Lines, and a redaction filter on every handler.

botocore's debug logging prints request headers, including the ``Authorization`` header
(access key, signature) and ``X-Amz-Security-Token``. :class:`Redactor` rewrites every
record before any handler formats it, so no credential, signature or session token reaches
a terminal, a log file or a CI log, at any verbosity.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import IO, Any

__all__ = ["Redactor", "redact", "setup_logging"]

REDACTED = "[redacted]"
_PATTERNS = [
    # Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...
    re.compile(r"(?i)(['\"]?authorization['\"]?\s*[:=]\s*b?['\"]?)[^'\"\n]+"),
    re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)[^'\"\s,}]+"),
    re.compile(r"(?i)((?:x-amz-)?signature\s*=\s*)[0-9a-f]+"),
    re.compile(r"(?i)(credential\s*=\s*)[^,\s'\"]+"),
    re.compile(
        r"(?i)((?:aws_)?(?:secret_access_key|session_token|secret_key|token)['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"
    ),
    # Access key ids on their own (AKIA... long-term, ASIA... temporary).
    re.compile(r"()\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b"),
]
_SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ACCESS_KEY_ID",
)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with credentials, signatures and tokens replaced by ``[redacted]``."""
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class Redactor(logging.Filter):
    """Rewrites each record's message (and exception text) with secrets removed.

    Besides the patterns, the values of the AWS credential environment variables are
    removed wherever they appear."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets = tuple(v for k in _SECRET_ENV if (v := os.environ.get(k)))

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self._secrets)
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info), self._secrets)
            record.exc_info = None
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        body.update(getattr(record, "fields", {}))
        if record.exc_text:
            body["exception"] = record.exc_text
        return json.dumps(body, ensure_ascii=False)


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
    handler = logging.StreamHandler(stream)
    handler.addFilter(Redactor())
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("batchcopy").setLevel(level)
    for name in ("botocore", "aiobotocore", "urllib3", "aiohttp"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
