"""The accounts an emulator holds, and the organization they belong to.

A seed in the one-account format (``{"regions": ...}``) is account 123456789012. A seed with
accounts holds several, each with its own Lightsail state::

    {"caller": "111111111111",
     "accounts": {
        "111111111111": {"name": "management", "regions": {}},
        "222222222222": {"name": "client-a", "ou": "/Prod/Web",
                         "roles": ["OrganizationAccountAccessRole"],
                         "regions": {"us-east-1": {"instances": [...]}}},
        "333333333333": {"roles": [{"name": "BatchcopyRole", "external_id": "x-1"}],
                         "state": "SUSPENDED", "regions": {}}}}

``regions`` has the one-account format's content. ``roles`` lists the roles AssumeRole may
take in the account (a role given as an object requires its ``external_id``); without
``roles`` any role may be assumed. ``ou`` places the account in an organizational unit by
path ("" or "/" is the root); ``state`` is its Organizations state (ACTIVE by default).
Credentials the emulator did not issue belong to ``caller`` (by default the first account),
which is also the organization's management account.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from batchcopy.emulator.seed import SeedError, load_seed
from batchcopy.emulator.sim import ACCOUNT_ID, Lightsail

__all__ = ["Account", "Organization", "Role", "accounts_from_seed", "add_to_accounts"]

_ACCOUNT_ID = re.compile(r"\d{12}", re.ASCII)
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_STATES = ("ACTIVE", "SUSPENDED", "PENDING_CLOSURE", "PENDING_ACTIVATION", "CLOSED")
_ACCOUNT_KEYS = {"name", "email", "ou", "state", "roles", "regions"}

MakeSim = Callable[[str], Lightsail]


@dataclass(frozen=True, slots=True, kw_only=True)
class Role:
    """A role AssumeRole may take; ``external_id``, when set, must be given with it."""

    name: str
    external_id: str | None = None


@dataclass(slots=True, kw_only=True)
class Account:
    """One AWS account: its Lightsail state and what Organizations and STS know of it."""

    id: str
    sim: Lightsail
    name: str = ""
    email: str = ""
    ou: str = ""  # "/Prod/Web"; "" is the root
    state: str = "ACTIVE"
    roles: dict[str, Role] | None = None  # None: any role may be assumed

    def role(self, name: str) -> Role | None:
        """The role ``name`` if it can be assumed here."""
        if self.roles is None:
            return Role(name=name)
        return self.roles.get(name)


def accounts_from_seed(data: Any, make_sim: MakeSim) -> tuple[dict[str, Account], str]:
    """The accounts ``data`` describes (none: one empty account) and the caller's account."""
    if data is None:
        return {ACCOUNT_ID: Account(id=ACCOUNT_ID, sim=make_sim(ACCOUNT_ID))}, ACCOUNT_ID
    if isinstance(data, dict) and "accounts" in data:
        accounts: dict[str, Account] = {}
        add_to_accounts(accounts, data, make_sim)
        if not accounts:
            raise SeedError("accounts: list at least one account")
        caller = data.get("caller", next(iter(accounts)))
        if caller not in accounts:
            raise SeedError(f"caller: {caller!r} is not one of the accounts")
        return accounts, caller
    account = Account(id=ACCOUNT_ID, sim=make_sim(ACCOUNT_ID))
    load_seed(account.sim, data)
    return {ACCOUNT_ID: account}, ACCOUNT_ID


def add_to_accounts(accounts: dict[str, Account], data: Any, make_sim: MakeSim) -> None:
    """Add what ``data`` (a seed with accounts) describes; new accounts are created."""
    if not isinstance(data, dict) or not isinstance(data.get("accounts"), dict):
        raise SeedError('a seed with accounts must be an object with an "accounts" object')
    unknown = sorted(set(data) - {"accounts", "caller"})
    if unknown:
        raise SeedError(f"{unknown[0]}: unknown key (known: accounts, caller)")
    for account_id, content in data["accounts"].items():
        where = f"accounts.{account_id}"
        if not isinstance(account_id, str) or not _ACCOUNT_ID.fullmatch(account_id):
            raise SeedError(f"{where}: an account id is 12 digits")
        if not isinstance(content, dict):
            raise SeedError(f"{where}: expected an object")
        if extra := sorted(set(content) - _ACCOUNT_KEYS):
            known = ", ".join(sorted(_ACCOUNT_KEYS))
            raise SeedError(f"{where}.{extra[0]}: unknown key (known: {known})")
        account = accounts.get(account_id) or Account(id=account_id, sim=make_sim(account_id))
        _describe(account, content, where)
        try:
            load_seed(account.sim, {"regions": content.get("regions", {})})
        except SeedError as exc:
            raise SeedError(f"{where}.{exc}") from None
        accounts[account_id] = account


def _describe(account: Account, content: dict[str, Any], where: str) -> None:
    for key in ("name", "email"):
        if key in content:
            if not isinstance(content[key], str):
                raise SeedError(f"{where}.{key}: expected a string")
            setattr(account, key, content[key])
    if "ou" in content:
        account.ou = _ou_path(content["ou"], f"{where}.ou")
    if "state" in content:
        if content["state"] not in _STATES:
            raise SeedError(f"{where}.state: one of {', '.join(_STATES)}")
        account.state = content["state"]
    if "roles" in content:
        account.roles = _roles(content["roles"], f"{where}.roles")


def _ou_path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not all(_ROLE_NAME.fullmatch(p) for p in _parts(value)):
        raise SeedError(f'{where}: a path of unit names like "/Prod/Web", got {value!r}')
    return "".join(f"/{p}" for p in _parts(value))


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def _roles(value: Any, where: str) -> dict[str, Role]:
    if not isinstance(value, list):
        raise SeedError(f'{where}: expected a list of role names or {{"name", "external_id"}}')
    roles = {}
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = {"name": item}
        name = item.get("name") if isinstance(item, dict) else None
        external = item.get("external_id") if isinstance(item, dict) else None
        if not isinstance(name, str) or not _ROLE_NAME.fullmatch(name):
            raise SeedError(f"{where}[{i}]: a role name of 1-64 letters, digits and +=,.@_-")
        if external is not None and not isinstance(external, str):
            raise SeedError(f"{where}[{i}].external_id: expected a string")
        roles[name] = Role(name=name, external_id=external)
    return roles


# -- Organizations' view ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    """The root or an organizational unit."""

    id: str
    path: str  # "" for the root
    arn: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1] if self.path else "Root"


@dataclass(slots=True)
class Organization:
    """The organization the accounts form, its management account the caller's. Ids are
    derived from the management account and the paths, so they stay put across resets."""

    management: str
    accounts: dict[str, Account]
    id: str = field(init=False)

    def __post_init__(self) -> None:
        self.id = "o-" + _digest(self.management, 10)

    def root(self) -> Unit:
        root_id = "r-" + _digest(self.id, 4)
        return Unit(id=root_id, path="", arn=f"{self._arn('root')}/{root_id}")

    def unit(self, unit_id: str) -> Unit | None:
        """The root or the unit with ``unit_id``."""
        return next((u for u in self.units() if u.id == unit_id), None)

    def units(self) -> Iterator[Unit]:
        """The root and every unit an account's path names, parents first."""
        root = self.root()
        yield root
        paths = {
            "/" + "/".join(_parts(a.ou)[:n])
            for a in self.accounts.values()
            for n in range(1, len(_parts(a.ou)) + 1)
        }
        for path in sorted(paths):
            unit_id = f"ou-{root.id[2:]}-{_digest(path, 8)}"
            yield Unit(id=unit_id, path=path, arn=f"{self._arn('ou')}/{unit_id}")

    def children(self, parent: Unit) -> list[Unit]:
        return [u for u in self.units() if u.path and u.path.rsplit("/", 1)[0] == parent.path]

    def accounts_in(self, parent: Unit) -> list[Account]:
        return [a for a in self.accounts.values() if a.ou == parent.path]

    def account_arn(self, account: Account) -> str:
        return f"{self._arn('account')}/{account.id}"

    def _arn(self, kind: str) -> str:
        return f"arn:aws:organizations::{self.management}:{kind}/{self.id}"


def _digest(text: str, size: int) -> str:
    """``size`` lowercase letters and digits derived from ``text``."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    number = int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")
    chars = []
    for _ in range(size):
        number, index = divmod(number, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars)
