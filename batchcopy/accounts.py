"""Accounts: which role reaches each account, from the options and an accounts file.

A manifest row may name an ``account`` (12 digits). Rows without one run with the base
credentials (``--profile`` and the usual chain), as do rows of the base credentials' own
account. Every other account is reached through STS AssumeRole: the role is
``arn:aws:iam::<account>:role/<--role-name>``, or what the accounts file (``--accounts``)
says for that account (a role name or a full ARN, and an external id)::

    accounts:                      # YAML, or the same as JSON; a bare list works too
      - account_id: "222222222222"
        name: client-a
        role: OrganizationAccountAccessRole
      - account_id: "333333333333"
        role: arn:aws:iam::333333333333:role/Batchcopy
        external_id: client-b-7f3c

Nothing here talks to AWS: :mod:`batchcopy.sessions` assumes the roles.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from batchcopy.errors import SettingsError

__all__ = [
    "ACCOUNT_RULE",
    "Access",
    "AccountAccess",
    "is_account_id",
    "load_accounts_file",
]

ACCOUNT_RULE = "12 digits, as AWS writes an account id"
_ACCOUNT = re.compile(r"\d{12}", re.ASCII)
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_ROLE_ARN = re.compile(
    r"arn:aws[\w-]*:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}", re.ASCII
)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
_DURATION = (900, 43_200)  # what STS allows for AssumeRole, in seconds
MAX_ACCOUNTS_FILE = 16 * 1024**2  # bytes: some 200,000 entries
_FILE_KEYS = frozenset({"account_id", "name", "role", "external_id"})


def is_account_id(text: str) -> bool:
    """Whether ``text`` is an AWS account id: 12 digits."""
    return bool(_ACCOUNT.fullmatch(text))


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountAccess:
    """How to reach one account, as the accounts file says: ``role`` is a role name or a
    full ARN ("" for ``--role-name``), ``external_id`` overrides ``--external-id``."""

    account_id: str
    name: str = ""
    role: str = ""
    external_id: str | None = None

    def __post_init__(self) -> None:
        if not is_account_id(self.account_id):
            raise ValueError(f"account_id: {self.account_id!r} is not {ACCOUNT_RULE}")
        if self.role and not _ROLE_NAME.fullmatch(self.role):
            match = _ROLE_ARN.fullmatch(self.role)
            if match is None:
                raise ValueError(f"role: {self.role!r} is neither a role name nor a role ARN")
            if match.group(1) != self.account_id:
                raise ValueError(f"role: {self.role} is a role of another account")
        if self.external_id is not None and not _EXTERNAL_ID.fullmatch(self.external_id):
            raise ValueError("external_id: 2-1224 letters, digits and +=,.@:/-")


@dataclass(frozen=True, slots=True, kw_only=True)
class Access:
    """How a run reaches accounts other than the base credentials' own: ``--role-name``,
    ``--external-id``, ``--role-session-name`` (default ``batchcopy-<run id>``),
    ``--role-duration`` (seconds) and the accounts file's entries."""

    role_name: str | None = None
    external_id: str | None = None
    session_name: str | None = None
    duration: int = 3600
    accounts: Mapping[str, AccountAccess] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.role_name is not None and not _ROLE_NAME.fullmatch(self.role_name):
            raise SettingsError(
                f"{self.role_name!r} is not a role name (1-64 letters, digits and +=,.@_-)",
                field="role_name",
            )
        if self.external_id is not None and not _EXTERNAL_ID.fullmatch(self.external_id):
            raise SettingsError(
                "must be 2-1224 letters, digits and +=,.@:/- (what STS accepts)",
                field="external_id",
            )
        if self.session_name is not None and not _SESSION_NAME.fullmatch(self.session_name):
            raise SettingsError(
                f"{self.session_name!r}: use 2-64 letters, digits and +=,.@_- (what STS accepts)",
                field="role_session_name",
            )
        low, high = _DURATION
        if not low <= self.duration <= high:
            raise SettingsError(
                f"must be {low} to {high} seconds (what STS allows), got {self.duration}",
                field="role_duration",
            )

    def role_arn(self, account: str) -> str | None:
        """The role to assume in ``account``; None when nothing names one."""
        entry = self.accounts.get(account)
        role = (entry.role if entry else "") or self.role_name
        if not role:
            return None
        return role if role.startswith("arn:") else f"arn:aws:iam::{account}:role/{role}"

    def external_id_for(self, account: str) -> str | None:
        entry = self.accounts.get(account)
        if entry is not None and entry.external_id is not None:
            return entry.external_id
        return self.external_id

    def name_of(self, account: str) -> str:
        """The account's name in the accounts file, or ""."""
        entry = self.accounts.get(account)
        return entry.name if entry else ""

    def session_for(self, run_id: str) -> str:
        """The role session name: as given, or ``batchcopy-<run id>`` cut to what STS takes."""
        if self.session_name:
            return self.session_name
        cleaned = re.sub(r"[^\w+=,.@-]", "-", run_id)
        return f"batchcopy-{cleaned}"[:64] if cleaned else "batchcopy"


def load_accounts_file(path: Path) -> dict[str, AccountAccess]:
    """The accounts a file lists, by id. ``SettingsError`` names the file and, for every
    entry that is wrong, its line (YAML) or place, the key and the rule; nothing is sent
    before it is read."""
    try:
        if path.stat().st_size > MAX_ACCOUNTS_FILE:
            raise SettingsError(
                f"{path}: larger than {MAX_ACCOUNTS_FILE // 1024**2} MB; an accounts file "
                "lists accounts, one short entry each",
                field="accounts",
            )
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read ({exc.strerror})", field="accounts") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not UTF-8 text", field="accounts") from None
    data = _parse(path, text)
    entries = data.get("accounts") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise _bad(path, ["expected a list of accounts, or an object with an accounts list"])
    accounts: dict[str, AccountAccess] = {}
    problems: list[str] = []
    for i, entry in enumerate(entries):
        line = entry.pop(_LINE, None) if isinstance(entry, dict) else None
        where = f"line {line}: accounts[{i}]" if line else f"accounts[{i}]"
        try:
            access = _entry(entry)
        except ValueError as exc:
            problems.append(f"{where}.{exc}" if str(exc)[:1].isalpha() else f"{where}{exc}")
            continue
        if access.account_id in accounts:
            problems.append(f"{where}.account_id: {access.account_id} is listed twice")
        accounts[access.account_id] = access
    if problems:
        raise _bad(path, problems)
    return accounts


def _entry(entry: Any) -> AccountAccess:
    """One entry of an accounts file; ValueError ``key: rule`` (or ``: rule``)."""
    if not isinstance(entry, dict):
        raise ValueError(": expected an object with account_id")
    if unknown := sorted(set(map(str, entry)) - _FILE_KEYS):
        raise ValueError(f"{unknown[0]}: unknown key (known: {', '.join(sorted(_FILE_KEYS))})")
    raw = entry.get("account_id")
    account_id = _account_id(raw)
    if account_id is None:
        hint = " (write it in quotes: unquoted, YAML reads it as a number)"
        raise ValueError(
            f"account_id: {raw!r} is not {ACCOUNT_RULE}{hint if isinstance(raw, int) else ''}"
        )
    for key in ("name", "role", "external_id"):
        if key in entry and not isinstance(entry[key], str):
            raise ValueError(f"{key}: expected a string (in quotes)")
    if "role" in entry and not entry["role"].strip():
        raise ValueError("role: empty; leave the key out to use --role-name")
    return AccountAccess(
        account_id=account_id,
        name=entry.get("name", ""),
        role=entry.get("role", ""),
        external_id=entry.get("external_id"),
    )


_LINE = "__batchcopy_line__"  # where a YAML mapping starts, kept while the file is read


def _parse(path: Path, text: str) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise _bad(path, [f"not valid JSON ({exc})"]) from None
    import yaml  # only when an accounts file is YAML: `batchcopy --help` stays quick

    class Loader(yaml.SafeLoader):
        """SafeLoader that notes each mapping's line, for messages, and takes no aliases:
        an accounts file has no use for them, and nested ones expand without bound."""

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.YAMLError(f"line {mark.line + 1}: aliases (*name) are not accepted")
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            mapping = super().construct_mapping(node, deep=deep)
            mapping[_LINE] = node.start_mark.line + 1
            return mapping

    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader, plus line numbers
    except (yaml.YAMLError, RecursionError) as exc:
        raise _bad(path, [f"not valid YAML ({' '.join(str(exc).split())})"]) from None


def _account_id(value: Any) -> str | None:
    """A 12-digit id; YAML reads an unquoted one as a number, which is fine unless it
    started with a zero (then it lost digits, and is refused)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and is_account_id(value) else None


def _bad(path: Path, problems: list[str]) -> SettingsError:
    """Every problem of the file, one per line, each naming the file."""
    return SettingsError("\n".join(f"{path}: {p}" for p in problems), field="accounts")
