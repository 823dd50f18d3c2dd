"""JSON and JSON Lines manifests: one row per object, with the line each starts on.

A JSON document is decoded one job at a time (:class:`_JsonWalk`), never as a whole list of
rows; JSON Lines is decoded a line at a time.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Generator, Iterator
from typing import Any, BinaryIO

from batchcopy.manifest.fields import (
    _ACCEPTED,
    _SPELLINGS,
    _Invalid,
    _Issue,
    _kind,
    _quote,
    _Row,
    _value,
)
from batchcopy.manifest.files import _BOM, MAX_JSON_BYTES, _Digest, _Lines


def _number(digits: str) -> int | float:
    # No field is a number, so a huge one is simply wrong; Python refuses to make ints of
    # over 4,300 digits (a ValueError out of the parser), and a float says "inf" instead.
    return int(digits) if len(digits) <= 100 else float(digits)


class _Object(dict[str, Any]):
    """A JSON object, and the keys it gives more than once (JSON keeps the last silently)."""

    twice: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) < len(pairs):
        obj.twice = tuple(key for key, n in Counter(key for key, _ in pairs).items() if n > 1)
    return obj


_DECODER = json.JSONDecoder(parse_int=_number, object_pairs_hook=_object)


def _jsonl_items(lines: _Lines) -> Iterator[_Row | _Issue]:
    for text in lines:
        if lines.fault:
            yield lines.fault
            lines.fault = None
        elif text.strip():
            try:
                yield from _json_job(lines.count, _DECODER.decode(text.rstrip()), {})
            except json.JSONDecodeError as exc:
                where = f"{exc.msg} at column {exc.colno}"
                yield _Issue(lines.count, "", f"not valid JSON ({where}): one object per line")
            except RecursionError:
                yield _Issue(lines.count, "", "not valid JSON: nested too deeply")


def _json_job(line: int, job: object, defaults: dict[str, object]) -> Iterator[_Row | _Issue]:
    if not isinstance(job, dict):
        yield _Issue(line, "", f"a job must be a JSON object, not {_kind(job)}")
        return
    values = yield from _json_fields(line, job)
    for field, value in defaults.items():
        given = values.get(field)
        if given is None or (isinstance(given, str) and not given.strip()):
            values[field] = value
    yield _Row(line, values)


def _json_fields(line: int, obj: dict[str, Any]) -> Generator[_Issue, None, dict[str, object]]:
    """Problems with an object's keys; returns its values by field."""
    values: dict[str, object] = {}
    seen: dict[str, str] = {}
    for key in getattr(obj, "twice", ()):
        yield _Issue(line, _SPELLINGS.get(key) or _quote(key), "given twice; keep one")
    for key, value in obj.items():
        field = _SPELLINGS.get(key)
        if field is None:
            yield _Issue(line, _quote(key), f"unknown field; use {_ACCEPTED}")
        elif field in seen:
            yield _Issue(line, field, f"given twice ({seen[field]}, {key}); keep one")
        else:
            seen[field], values[field] = key, value
    return values


def _json_items(file: BinaryIO, digest: _Digest) -> Iterator[_Row | _Issue]:
    raw = file.read(MAX_JSON_BYTES + 1)
    digest.update(raw)
    body = raw.removeprefix(_BOM)
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        yield _Issue(line, "", f"not valid UTF-8 (byte 0x{body[exc.start]:02x}); save as UTF-8")
        return
    del raw, body  # only the text is needed from here on
    walk = _JsonWalk(text)
    try:
        yield from walk.document()
    except json.JSONDecodeError as exc:
        yield _Issue(exc.lineno, "", f"not valid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        yield _Issue(walk.line, "", "not valid JSON: nested too deeply")


_WHITESPACE = re.compile(r"[ \t\n\r]*")


class _JsonWalk:
    """Decodes a JSON manifest one job at a time, knowing the line each job starts on.

    Lines are counted forward from the last position, never again from the start.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.line = 1
        self.end = 0  # just after the last array or object walked
        self._at = 0
        self._decode = _DECODER.raw_decode

    def document(self) -> Iterator[_Row | _Issue]:
        pos = self._skip(0)
        if pos == len(self.text):
            return  # nothing at all: reported as "no jobs"
        if self.text[pos] == "{":
            yield from self._object(pos)
        elif self.text[pos] == "[":
            for line, job in self._array(pos):
                yield from _json_job(line, job, {})
        else:
            message = 'expected an array of jobs, or an object with "jobs"'
            yield _Issue(self._line_at(pos), "", message)
            return
        if (end := self._skip(self.end)) < len(self.text):
            raise json.JSONDecodeError("Extra data", self.text, end)

    def _object(self, pos: int) -> Iterator[_Row | _Issue]:
        """``{"defaults": {...}, "jobs": [...]}``: in either order, so the jobs are read last."""
        defaults: dict[str, object] = {}
        jobs: tuple[int, int] | None = None  # where the array starts, and its line
        seen_jobs = spoiled = False
        keys: set[str] = set()
        pos = self._skip(pos + 1)
        more = not self.text.startswith("}", pos)
        while more:
            if not self.text.startswith('"', pos):
                message = "Expecting property name enclosed in double quotes"
                raise json.JSONDecodeError(message, self.text, pos)
            key, pos = self._value(pos)
            pos = self._skip(self._expect(self._skip(pos), ":"))
            line, seen_jobs = self._line_at(pos), seen_jobs or key == "jobs"
            if key in keys and key in ("defaults", "jobs"):
                # JSON would keep the last silently: the first's jobs, or defaults, lost.
                spoiled = True
                yield _Issue(line, key, "given twice; keep one")
            keys.add(key)
            if key == "jobs" and self.text.startswith("[", pos):
                jobs = (pos, line)
                for _ in self._array(pos):  # check the syntax now, read the jobs at the end
                    pass
                pos = self.end
            else:
                value, pos = self._value(pos)
                for issue in self._member(line, key, value, defaults):
                    spoiled = spoiled or key in ("defaults", "jobs")
                    yield issue
            pos = self._skip(pos)
            more = not self.text.startswith("}", pos)
            if more:
                pos = self._skip(self._expect(pos, ","))
        end = pos + 1
        if not seen_jobs:
            message = 'missing: use {"jobs": [...]}, or .jsonl for one job per line'
            yield _Issue(self._line_at(pos), "jobs", message)
        elif jobs and not spoiled:  # bad defaults would spoil every job alike
            self._at, self.line = jobs
            for line, job in self._array(jobs[0]):
                yield from _json_job(line, job, defaults)
        self.end = end

    def _member(
        self, line: int, key: str, value: object, defaults: dict[str, object]
    ) -> Iterator[_Issue]:
        if key == "defaults" and isinstance(value, dict):
            defaults.update((yield from _json_fields(line, value)))
            for field, raw in defaults.items():
                try:
                    _value(field, raw)
                except _Invalid as exc:
                    for message in exc.args:
                        yield _Issue(line, field, f"the default {message}")
        elif key in ("defaults", "jobs"):
            wanted = "an object" if key == "defaults" else "an array"
            yield _Issue(line, key, f"must be {wanted}, not {_kind(value)}")
        else:
            yield _Issue(line, _quote(key), 'unknown key; use "defaults" and "jobs"')

    def _array(self, pos: int) -> Iterator[tuple[int, Any]]:
        """Each element of the array at ``pos`` with its line; leaves ``end`` after it."""
        pos = self._skip(pos + 1)
        more = not self.text.startswith("]", pos)
        while more:
            value, pos = self._value(pos)
            yield self.line, value
            pos = self._skip(pos)
            more = not self.text.startswith("]", pos)
            if more:
                pos = self._skip(self._expect(pos, ","))
        self.end = pos + 1

    def _value(self, pos: int) -> tuple[Any, int]:
        self._line_at(pos)  # a RecursionError carries no position: know the line beforehand
        return self._decode(self.text, pos)

    def _line_at(self, pos: int) -> int:
        self.line += self.text.count("\n", self._at, pos)
        self._at = pos
        return self.line

    def _skip(self, pos: int) -> int:
        match = _WHITESPACE.match(self.text, pos)
        assert match is not None  # the pattern matches the empty string
        return match.end()

    def _expect(self, pos: int, mark: str) -> int:
        if not self.text.startswith(mark, pos):
            raise json.JSONDecodeError(f"Expecting {mark!r} delimiter", self.text, pos)
        return pos + 1
