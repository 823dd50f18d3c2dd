"""Organizations in the emulator: the roots, units and accounts of the seed's organization.

Answers ``ListRoots``, ``ListAccounts``, ``ListAccountsForParent`` and
``ListOrganizationalUnitsForParent`` (JSON 1.1, ``AWSOrganizationsV20161128.*``) for callers
of the management account, paginated by ``MaxResults``/``NextToken`` as the service does.
With ``empty_pages`` every listing first answers a page with no items and a ``NextToken``,
which the real service is allowed to do and clients must follow.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from batchcopy.emulator.accounts import Account, Organization, Unit
from batchcopy.emulator.sim import ApiError

__all__ = ["OPERATIONS", "TARGET_PREFIX", "answer"]

TARGET_PREFIX = "AWSOrganizationsV20161128."
OPERATIONS = (
    "ListRoots",
    "ListAccounts",
    "ListAccountsForParent",
    "ListOrganizationalUnitsForParent",
)
_MAX_RESULTS = 20  # what the service allows at most, and gives by default


def answer(
    org: Organization | None,
    action: str,
    params: dict[str, Any],
    *,
    caller: str,
    page_size: int,
    empty_pages: bool,
) -> dict[str, Any]:
    """The body of ``action``'s answer, or ApiError as the service refuses it."""
    if org is None:
        raise ApiError(
            "AWSOrganizationsNotInUseException",
            "Your account is not a member of an organization.",
        )
    if caller != org.management:
        # As AWS words it: only the management account (here) may list the organization.
        refusal = "You don't have permissions to access this resource."
        raise ApiError("AccessDeniedException", refusal)
    size = _max_results(params.get("MaxResults"), page_size)
    if action == "ListRoots":
        items: Sequence[Any] = [_unit(org.root(), roots=True)]
        key = "Roots"
    elif action == "ListAccounts":
        items, key = [_account(org, a) for a in _sorted(org.accounts.values())], "Accounts"
    else:
        parent = _parent(org, params.get("ParentId"))
        if action == "ListAccountsForParent":
            items, key = [_account(org, a) for a in _sorted(org.accounts_in(parent))], "Accounts"
        else:
            items = [_unit(u) for u in org.children(parent)]
            key = "OrganizationalUnits"
    return _page(action, key, items, params.get("NextToken"), size, empty_pages)


def _page(
    action: str,
    key: str,
    items: Sequence[Any],
    token: Any,
    size: int,
    empty_pages: bool,
) -> dict[str, Any]:
    start = 0 if token is None else _read_token(action, token)
    if empty_pages and start % 2 == 0:
        # An empty page first: an odd position means the empty page was given.
        return {key: [], "NextToken": _token(action, start + 1)}
    first = start // 2 if empty_pages else start
    page = items[first : first + size]
    body: dict[str, Any] = {key: list(page)}
    if first + size < len(items):
        after = first + size
        body["NextToken"] = _token(action, after * 2 if empty_pages else after)
    return body


def _token(action: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"{action}:{position}".encode()).decode()


def _read_token(action: str, token: Any) -> int:
    try:
        kind, _, position = base64.urlsafe_b64decode(str(token)).decode().partition(":")
        if kind == action and position.isdigit():
            return int(position)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ApiError("InvalidInputException", "You specified an invalid value for nextToken.")


def _max_results(value: Any, page_size: int) -> int:
    if value is None:
        return min(page_size, _MAX_RESULTS)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _MAX_RESULTS:
        raise ApiError("InvalidInputException", f"MaxResults must be between 1 and {_MAX_RESULTS}.")
    return min(value, page_size)


def _parent(org: Organization, parent_id: Any) -> Unit:
    unit = org.unit(parent_id) if isinstance(parent_id, str) else None
    if unit is None:
        raise ApiError("ParentNotFoundException", f"The parent {parent_id!r} was not found.")
    return unit


def _sorted(accounts: Any) -> list[Account]:
    return sorted(accounts, key=lambda a: a.id)


def _account(org: Organization, account: Account) -> dict[str, Any]:
    status = account.state if account.state in ("ACTIVE", "SUSPENDED") else "PENDING_CLOSURE"
    return {
        "Id": account.id,
        "Arn": org.account_arn(account),
        "Email": account.email or f"aws+{account.id}@example.com",
        "Name": account.name or account.id,
        "Status": status,
        "State": account.state,
        "JoinedMethod": "CREATED",
        "JoinedTimestamp": 1_700_000_000.0,
    }


def _unit(unit: Unit, *, roots: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"Id": unit.id, "Arn": unit.arn, "Name": unit.name}
    if roots:
        body["PolicyTypes"] = []
    return body
