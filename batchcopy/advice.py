"""What to do about a failed job: the fix for each error code a report can hold.

One mapping for every place that suggests a fix for a row (report.html today), so the advice
for a code is written once. Messages already say what went wrong; these say what to do next.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from batchcopy.jobs import INTERRUPTED_CODE

__all__ = ["RERUN", "STATUS_FIXES", "fix_for"]

RERUN = "then `batchcopy run retry.csv` runs the job again"

_ACCESS = (
    "grant these credentials lightsail:CopySnapshot and the reads (examples/iam-policy.json), "
    + RERUN
)
_REFUSED = (
    "the credentials were refused: renew them (`aws sso login`, or a new access key), "
    "then `batchcopy run --resume DIR`"
)
# The failed copy stays behind in state error under the target name, in the way of the next.
_COPY_FAILED = (
    "Lightsail could not finish the copy: delete the target it left in state error "
    "(aws lightsail delete-instance-snapshot or delete-disk-snapshot), " + RERUN
)
_THROTTLED = "Lightsail kept throttling: lower --rate or --max-rate, " + RERUN
_SERVICE = "a fault on Lightsail's side: wait a while, " + RERUN

_FIXES: dict[str, str] = {
    "NotFoundException": "check source_region and the source name (`batchcopy discover` lists "
    "them), " + RERUN,
    "SourceNotFound": "check source_region and the source name (`batchcopy discover` lists "
    "them), " + RERUN,
    "TargetExists": "another snapshot holds this name (the message says what it is): choose "
    "another target_snapshot_name, " + RERUN,
    "TargetFailed": "delete the target left in state error, " + RERUN,
    "TargetMissing": "the copy vanished while it was followed: " + RERUN,
    "CopyFailed": _COPY_FAILED,
    "SnapshotCopyFailed": _COPY_FAILED,
    "CannotTell": "`batchcopy run --resume DIR` looks at the target again",
    "ClockSkew": "check this machine's clock (NTP), then `batchcopy run --resume DIR`",
    INTERRUPTED_CODE: "`batchcopy run --resume DIR` (or retry.csv) finishes it; a copy it "
    "made is taken as its own",
    "InvalidInputException": "fix the manifest row (the message names the field), " + RERUN,
    "ParamValidationError": "fix the manifest row (the message names the field), " + RERUN,
    "OperationFailureException": "Lightsail refused the operation (see the message), " + RERUN,
    "AssumeRoleFailed": "check this account's role (--role-name or the --accounts file) and "
    "its trust policy, " + RERUN,
    "AccessDeniedException": _ACCESS,
    "AccessDenied": _ACCESS,
    "UnauthorizedOperation": _ACCESS,
    "ThrottlingException": _THROTTLED,
    "Throttling": _THROTTLED,
    "TooManyRequestsException": _THROTTLED,
    "RequestLimitExceeded": _THROTTLED,
    "ServiceException": _SERVICE,
    "ServiceUnavailable": _SERVICE,
    "InternalFailure": _SERVICE,
    "UnauthenticatedException": _REFUSED,
    "UnrecognizedClientException": _REFUSED,
    "InvalidClientTokenId": _REFUSED,
    "InvalidSignatureException": _REFUSED,
    "SignatureDoesNotMatch": _REFUSED,
    "ExpiredToken": _REFUSED,
    "ExpiredTokenException": _REFUSED,
}
FIXES: Mapping[str, str] = MappingProxyType(_FIXES)
# Rows with no error that still need something done.
STATUS_FIXES: Mapping[str, str] = MappingProxyType(
    {
        "in_progress": "still copying when the wait ended: `batchcopy run retry.csv --wait` "
        "follows it to the end without copying again",
        "not_started": "never sent: `batchcopy run MANIFEST --resume DIR` (or `batchcopy run "
        "retry.csv`) runs it",
    }
)
# A prune's failed delete: its folder has no retry.csv, and a resume finishes only its plan.
_PRUNE_AGAIN = "a new prune (not --resume) plans and tries it again"


def fix_for(code: str, *, prune: bool = False) -> str:
    """The fix to suggest for a row that failed with ``code`` (in a prune's report with
    ``prune``); "" for a row with no error."""
    if not code:
        return ""
    fix = FIXES.get(code, "read the error message, " + RERUN)
    return fix.replace(RERUN, _PRUNE_AGAIN) if prune else fix
