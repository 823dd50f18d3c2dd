"""Checks that a run can work here: credentials, Lightsail in each region, the report folder.

Each check becomes a :class:`Check`, OK or failed with the fix; nothing is raised for what
goes wrong outside (no credentials, a refused permission, an endpoint that does not answer).
The regions are checked at once, each within a timeout, through the same clients, profile
and endpoint settings a run uses. Only reads are made. asyncio is the backend (aiobotocore
needs it).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from batchcopy.errors import (
    CredentialsError,
    EndpointUnreachableError,
    LightsailError,
    ManifestError,
    PermanentError,
    ReportDirError,
    SettingsError,
    ThrottledError,
    TransientError,
)
from batchcopy.facts import lightsail_regions
from batchcopy.lightsail import (
    MALFORMED_ANSWER,
    PROBE_ACTION,
    LightsailClients,
    caller_identity,
    sts_endpoint,
)
from batchcopy.logs import redact
from batchcopy.report import check_report_dir
from batchcopy.settings import Settings

__all__ = ["DEFAULT_REGION", "Check", "run_checks"]

DEFAULT_REGION = "us-east-1"  # checked when neither a manifest nor a region names one
SHOWN_PROBLEMS = 3  # manifest problems a failed manifest check quotes

CREDENTIALS_FIX = (
    "set AWS_PROFILE or pass --profile, or run `aws configure` "
    "(`aws sso login` when an SSO session has expired)"
)
REFUSED_FIX = (
    "the credentials were refused: renew them (`aws sso login`, or a new access key) "
    "and check the profile"
)
ACCESS_DENIED = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})
REFUSED = frozenset(
    {
        "UnauthenticatedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)
NETWORK_FIX = "check the network or proxy, and --endpoint-url / AWS_ENDPOINT_URL_LIGHTSAIL if set"
STS_NETWORK_FIX = "check the network or proxy, and AWS_ENDPOINT_URL_STS if it is set"
_SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One check's outcome: what was checked, OK or not, what was found, and the fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def __post_init__(self) -> None:
        if not self.ok and not self.fix:
            raise ValueError(f"check {self.name!r} failed, so it must say how to fix it")

    def __str__(self) -> str:
        line = f"{'OK' if self.ok else 'FAIL':<4}  {self.name}: {self.detail}"
        return f"{line.rstrip('.')}; fix: {self.fix}" if self.fix else line

    def to_json(self) -> dict[str, object]:
        return asdict(self)


async def run_checks(
    settings: Settings,
    *,
    regions: Sequence[str] = (),
    manifest: str | Path | None = None,
    source_region: str | None = None,
    target_region: str | None = None,
    report_dir: Path | None = None,
    per_check: float = 15.0,
    retry_pause: float = 1.0,
) -> list[Check]:
    """Check the credentials, Lightsail in each region and the report folder.

    The regions checked are ``regions`` plus every source and target region of ``manifest``
    (loaded with the ``source_region`` / ``target_region`` defaults, as a run loads it), or
    :data:`DEFAULT_REGION` when that leaves none. A manifest that fails validation is a
    failed check of its own. ``report_dir`` is the report folder itself, as a run's
    ``report_dir``; a run could use it (nothing is created), or with ``None`` make a new one
    in the current folder. Each network check gets ``per_check`` seconds; a throttled or
    failed read is tried once more after ``retry_pause`` seconds.

    Returns the checks in a fixed order: credentials, manifest, regions (sorted), report
    folder.
    """
    identity: dict[str, Check] = {}
    lanes: dict[str, Check] = {}
    reached: dict[str, list[Check]] = {}  # per account: its role, then its regions
    loaded: tuple[Check | None, dict[str, set[str]]] = (None, {})
    async with LightsailClients(settings) as api, anyio.create_task_group() as tg:
        tg.start_soon(_into, identity, "", functools.partial(_credentials, settings, per_check))
        if manifest is not None:
            loaded = await anyio.to_thread.run_sync(
                _manifest, manifest, source_region, target_region
            )
        by_account = loaded[1]
        base = sorted(set(regions) | by_account.pop("", set()))
        for region in base or ([] if by_account else [DEFAULT_REGION]):
            check = functools.partial(_region, api, region, per_check, retry_pause)
            tg.start_soon(_into, lanes, region, check)
        for account in sorted(set(by_account) | set(settings.access.accounts)):
            where = by_account.get(account) or set(regions) or {DEFAULT_REGION}
            tg.start_soon(
                _into_all,
                reached,
                account,
                functools.partial(
                    _account,
                    api,
                    settings.access.role_arn(account),
                    account,
                    sorted(where),
                    per_check,
                    retry_pause,
                ),
            )
    checks = [identity[""]]
    if loaded[0] is not None:
        checks.append(loaded[0])
    checks += [lanes[region] for region in sorted(lanes)]
    checks += [check for account in sorted(reached) for check in reached[account]]
    checks.append(_report_dir(report_dir))
    return checks


async def _into(slot: dict[str, Check], key: str, check: Callable[[], Awaitable[Check]]) -> None:
    slot[key] = await check()


async def _into_all(
    slot: dict[str, list[Check]], key: str, checks: Callable[[], Awaitable[list[Check]]]
) -> None:
    slot[key] = await checks()


async def _account(
    api: LightsailClients,
    role: str | None,
    account: str,
    regions: Sequence[str],
    seconds: float,
    pause: float,
) -> list[Check]:
    """An account a manifest names: its role can be assumed, the keys are that account's,
    and Lightsail answers in each of its regions."""
    name = f"account {account}"
    try:
        with anyio.fail_after(seconds):
            clients = await api.account(account)
            identity = await clients.identity()
    except TimeoutError:
        detail = f"no answer from STS within {seconds:g} s"
        return [Check(name=name, ok=False, detail=detail, fix=STS_NETWORK_FIX)]
    except (LightsailError, CredentialsError, SettingsError) as exc:
        fix = (
            "let the base credentials assume the role: the role's trust policy and the "
            "caller's sts:AssumeRole permission (examples/iam/), and check --role-name, "
            "--external-id and the --accounts file"
        )
        if role is None:
            fix = "give --role-name, or a role for this account in the --accounts file"
        return [Check(name=name, ok=False, detail=_clean(str(exc)), fix=fix)]
    if identity["account"] != account:
        detail = f"the keys for it are account {identity['account']}'s ({identity['arn']})"
        fix = f"name a role in account {account} (--role-name, or its entry in --accounts)"
        return [Check(name=name, ok=False, detail=detail, fix=fix)]
    how = f"assumed {role}" if clients.role_assumed else "the base credentials' own"
    checks = [Check(name=name, ok=True, detail=f"{how}: {identity['arn']}")]
    for region in regions:
        check = await _region(clients, region, seconds, pause)
        checks.append(dataclasses.replace(check, name=f"lightsail {account}/{region}"))
    return checks


async def _credentials(settings: Settings, seconds: float) -> Check:
    name = "credentials"
    shared = sts_endpoint(settings)  # None: STS's own endpoint
    at = f" at {shared}" if shared else ""
    unreachable = STS_NETWORK_FIX
    if shared:
        unreachable = (
            f"STS was asked at {shared}, Lightsail's endpoint; if that does not answer STS, "
            "set AWS_ENDPOINT_URL_STS to an endpoint that does (https://sts.amazonaws.com)"
        )
    try:
        with anyio.fail_after(seconds):
            identity = await caller_identity(settings)
    except CredentialsError as exc:
        return Check(name=name, ok=False, detail=_clean(str(exc)), fix=CREDENTIALS_FIX)
    except TimeoutError:
        detail = f"STS GetCallerIdentity{at} gave no answer within {seconds:g} s"
        return Check(name=name, ok=False, detail=detail, fix=unreachable)
    except PermanentError as exc:
        fix = REFUSED_FIX if exc.code in REFUSED else unreachable if shared else CREDENTIALS_FIX
        detail = f"STS{at} answered {_clean(str(exc))}"
        return Check(name=name, ok=False, detail=detail, fix=fix)
    except (LightsailError, SettingsError) as exc:  # the error tree has no STS branch
        detail = f"STS GetCallerIdentity{at} failed: {_clean(str(exc))}"
        return Check(name=name, ok=False, detail=detail, fix=unreachable)
    detail = f"account {identity['account']}, {identity['arn']}"
    return Check(name=name, ok=True, detail=detail)


async def _region(api: LightsailClients, region: str, seconds: float, pause: float) -> Check:
    name = f"lightsail {region}"
    known = lightsail_regions()
    if region not in known:
        close = difflib.get_close_matches(region, known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        fix = f"{hint}`aws lightsail get-regions` lists the regions"
        return Check(name=name, ok=False, detail="not a Lightsail region", fix=fix)
    endpoint = "the Lightsail endpoint"
    try:
        with anyio.fail_after(seconds):
            endpoint = await api.endpoint(region)
            try:
                await api.probe(region)
            except (ThrottledError, TransientError) as exc:
                if isinstance(exc, TransientError) and not exc.ambiguous:
                    raise  # could not connect: a second try says nothing new
                await anyio.sleep(pause)
                await api.probe(region)
    except TimeoutError:
        detail = f"no answer from {endpoint} within {seconds:g} s"
        return Check(name=name, ok=False, detail=detail, fix=f"{NETWORK_FIX}; or raise --timeout")
    except ThrottledError as exc:
        detail = (
            f"{endpoint} answered, but throttled {PROBE_ACTION} twice ({exc.code}), so the "
            "permission is unconfirmed; runs slow down by themselves"
        )
        return Check(name=name, ok=True, detail=detail)
    except TransientError as exc:
        if exc.code == MALFORMED_ANSWER:
            detail = f"{endpoint} answered {PROBE_ACTION}, but not as Lightsail does"
            fix = "check --endpoint-url / AWS_ENDPOINT_URL_LIGHTSAIL: is it Lightsail, or a proxy?"
            return Check(name=name, ok=False, detail=detail, fix=fix)
        if not exc.ambiguous:
            detail = f"cannot connect to {endpoint} ({exc.code})"
            return Check(name=name, ok=False, detail=detail, fix=NETWORK_FIX)
        detail = f"{endpoint} failed {PROBE_ACTION} twice: {_clean(str(exc))}"
        return Check(name=name, ok=False, detail=detail, fix="a passing fault; try again later")
    except PermanentError as exc:
        detail = f"{PROBE_ACTION} refused: {_clean(str(exc))}"
        if exc.code in ACCESS_DENIED:
            fix = f"grant lightsail:{PROBE_ACTION}; see examples/iam-policy.json"
        elif exc.code in REFUSED:
            fix = REFUSED_FIX
        else:
            fix = f"check the region and the endpoint ({endpoint})"
        return Check(name=name, ok=False, detail=detail, fix=fix)
    except EndpointUnreachableError:
        detail = f"cannot connect to {endpoint} (connection refused)"
        return Check(name=name, ok=False, detail=detail, fix=NETWORK_FIX)
    except CredentialsError as exc:
        detail = f"cannot sign requests: {_clean(str(exc))}"
        return Check(name=name, ok=False, detail=detail, fix=CREDENTIALS_FIX)
    except SettingsError as exc:
        detail = _clean(str(exc))
        fix = "give --endpoint-url (or AWS_ENDPOINT_URL_LIGHTSAIL) as http(s)://host[:port]"
        return Check(name=name, ok=False, detail=detail, fix=fix)
    return Check(name=name, ok=True, detail=f"{PROBE_ACTION} answered at {endpoint}")


def _manifest(
    source: str | Path, source_region: str | None, target_region: str | None
) -> tuple[Check, dict[str, set[str]]]:
    """The manifest check and the regions the manifest names, by account ("": rows without
    one; nothing if it is invalid).
    Blocking: reads the whole file, twice (once to check it, once for the source regions)."""
    from batchcopy.manifest import load_manifest

    name = "manifest"
    regions: dict[str, set[str]] = {}
    try:
        loaded = load_manifest(source, source_region=source_region, target_region=target_region)
        for job in loaded.jobs():
            regions.setdefault(job.account, set()).update((job.source_region, job.target_region))
    except ManifestError as exc:
        count = len(exc.problems) + exc.more
        shown = "; ".join(str(p) for p in exc.problems[:SHOWN_PROBLEMS])
        more = f" (and {count - SHOWN_PROBLEMS} more)" if count > SHOWN_PROBLEMS else ""
        fix = f"correct the rows named; `batchcopy validate {source}` lists every problem"
        return Check(name=name, ok=False, detail=f"{shown}{more}", fix=fix), {}
    count = len(set().union(*regions.values())) if regions else 0
    jobs = f"{loaded.total} job{'' if loaded.total == 1 else 's'}"
    detail = f"{loaded.name}: {jobs}, valid, in {count} region{'' if count == 1 else 's'}"
    if accounts := len(set(regions) - {""}):
        detail += f", {accounts} account{'s' if accounts > 1 else ''}"
    return Check(name=name, ok=True, detail=detail), regions


def _report_dir(folder: Path | None) -> Check:
    """Whether a run given ``--report-dir folder`` could write its report there, by the
    rules a run applies (nothing is created); ``None``: whether a run without --report-dir
    could make its new folder here."""
    name = "report folder"
    try:
        if folder is None:
            # A name no run uses (runs add a timestamp), so it never exists; only its
            # parent, the current folder, is checked.
            check_report_dir(Path(f"batchcopy-report-doctor-{os.getpid()}"))
            return Check(
                name=name, ok=True, detail=f"a new report folder can be made in {Path.cwd()}"
            )
        found = check_report_dir(folder)
    except ReportDirError as exc:
        # Report-folder errors say what is wrong, then "; " and what to do.
        detail, _, fix = str(exc).partition("; ")
        return Check(name=name, ok=False, detail=detail, fix=fix or "choose another --report-dir")
    return Check(name=name, ok=True, detail=found)


def _clean(text: str) -> str:
    """An error message on one line, with anything like a credential taken out."""
    secrets = tuple(v for k in _SECRET_ENV if (v := os.environ.get(k)))
    return " ".join(redact(text, secrets).split())
