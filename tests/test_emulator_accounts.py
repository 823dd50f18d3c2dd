"""The emulator with accounts: STS AssumeRole and Organizations over the wire, with real
aiobotocore clients, and per-account Lightsail state, limits and counters."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import botocore.session
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from batchcopy.emulator import Emulator, FaultConfig, SeedError, running_emulator
from tests.conftest import control
from tests.test_emulator_server import assert_fits

MANAGEMENT, WEB, SHOP, GONE = "111111111111", "222222222222", "333333333333", "444444444444"
SNAP = {"name": "web-1-snap", "fromInstanceName": "web-1", "sizeInGb": 80}
SEED: dict[str, Any] = {
    "accounts": {
        MANAGEMENT: {"name": "management"},
        WEB: {
            "name": "web",
            "ou": "/Prod/Web",
            "roles": ["OrganizationAccountAccessRole"],
            "regions": {"us-east-1": {"instanceSnapshots": [SNAP]}},
        },
        SHOP: {
            "name": "shop",
            "ou": "/Prod",
            "roles": [{"name": "Batchcopy", "external_id": "shop-1"}],
            "regions": {"us-east-1": {"instanceSnapshots": [SNAP]}},
        },
        GONE: {"ou": "/Old", "state": "SUSPENDED"},
    }
}
ONCE = AioConfig(retries={"mode": "standard", "total_max_attempts": 1})
ORG_MODEL = botocore.session.get_session().get_service_model("organizations")


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(seed=SEED, faults=FaultConfig())


@asynccontextmanager
async def aws(url: str, service: str, **credentials: Any) -> AsyncIterator[Any]:
    """A real aiobotocore client of ``service`` against the emulator, retrying nothing."""
    credentials.setdefault("config", ONCE)
    async with get_session().create_client(
        service, region_name="us-east-1", endpoint_url=url, **credentials
    ) as client:
        yield client


async def assume(url: str, account: str, role: str, **extra: Any) -> dict[str, str]:
    """Credentials of ``role`` in ``account``, as keyword arguments for a client."""
    async with aws(url, "sts") as sts:
        answer = await sts.assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="test", **extra
        )
    creds = answer["Credentials"]
    return {
        "aws_access_key_id": creds["AccessKeyId"],
        "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"],
    }


async def test_an_assumed_role_works_in_its_own_account(emulator: Emulator, url: str) -> None:
    """Keys from AssumeRole reach that account's Lightsail: its snapshots, its ARNs, its copies
    (counted as account/region/name), apart from every other account's."""
    web = await assume(url, WEB, "OrganizationAccountAccessRole")
    async with aws(url, "sts", **web) as sts:
        assert (await sts.get_caller_identity())["Account"] == WEB
    async with aws(url, "lightsail", **web) as ls:
        (snap,) = (await ls.get_instance_snapshots())["instanceSnapshots"]
        assert snap["arn"].split(":")[4] == WEB
        await ls.copy_snapshot(
            sourceRegion="us-east-1", sourceSnapshotName="web-1-snap", targetSnapshotName="dr-1"
        )
    async with aws(url, "lightsail") as ls:  # the base credentials: the management account
        assert (await ls.get_instance_snapshots())["instanceSnapshots"] == []
    assert "dr-1" in emulator.accounts[WEB].sim.regions["us-east-1"].snapshots
    assert "dr-1" not in emulator.accounts[SHOP].sim.regions["us-east-1"].snapshots
    stats = emulator.stats.to_json()
    assert stats["copies_accepted"] == {f"{WEB}/us-east-1/dr-1": 1}
    assert stats["assume_role"] == {WEB: 1}


@pytest.mark.parametrize(
    ("account", "role", "extra"),
    [
        (WEB, "Admin", {}),  # a role the account does not list
        (SHOP, "Batchcopy", {}),  # its external id left out
        (SHOP, "Batchcopy", {"ExternalId": "wrong"}),
        (GONE, "OrganizationAccountAccessRole", {}),  # a suspended account
        ("999999999999", "OrganizationAccountAccessRole", {}),  # no such account
    ],
)
async def test_assume_role_is_denied_as_iam_would(
    emulator: Emulator, url: str, account: str, role: str, extra: dict[str, str]
) -> None:
    """A role that cannot be assumed answers AccessDenied naming the role, and counts."""
    with pytest.raises(ClientError) as caught:
        await assume(url, account, role, **extra)
    error = caught.value.response["Error"]
    assert error["Code"] == "AccessDenied"
    assert f"arn:aws:iam::{account}:role/{role}" in error["Message"]
    assert emulator.stats.assume_role[account] == 1


@pytest.mark.parametrize("partition", ["aws-cn", "aws-us-gov"])
async def test_a_role_in_another_partition_is_denied(
    emulator: Emulator, url: str, partition: str
) -> None:
    """The emulator is an aws partition: a role ARN of aws-cn or aws-us-gov, as an accounts
    file may name by mistake, is out of its callers' reach (a rehearsal must not pass what
    STS would refuse)."""
    arn = f"arn:{partition}:iam::{WEB}:role/OrganizationAccountAccessRole"
    async with aws(url, "sts") as sts:
        with pytest.raises(ClientError) as caught:
            await sts.assume_role(RoleArn=arn, RoleSessionName="test")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    assert arn in caught.value.response["Error"]["Message"]


async def test_the_external_id_a_role_requires_opens_it(url: str) -> None:
    """With the right external id, the role that requires one can be assumed."""
    shop = await assume(url, SHOP, "Batchcopy", ExternalId="shop-1")
    async with aws(url, "sts", **shop) as sts:
        identity = await sts.get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{SHOP}:assumed-role/Batchcopy/test"


@pytest.mark.parametrize(
    ("field", "value"),
    [("DurationSeconds", 899), ("DurationSeconds", 43_201), ("RoleSessionName", "a b")],
)
async def test_bad_assume_role_parameters_are_validation_errors(
    url: str, field: str, value: Any
) -> None:
    """Out-of-range durations and bad session names are refused as STS refuses them."""
    params: dict[str, Any] = {"RoleSessionName": "test", field: value}
    unchecked = ONCE.merge(AioConfig(parameter_validation=False))  # or botocore refuses them first
    async with aws(url, "sts", config=unchecked) as sts:
        with pytest.raises(ClientError) as caught:
            await sts.assume_role(RoleArn=f"arn:aws:iam::{WEB}:role/Admin", **params)
    assert caught.value.response["Error"]["Code"] == "ValidationError"


async def test_keys_from_before_a_reset_are_unknown_not_another_accounts(
    emulator: Emulator, url: str
) -> None:
    """After a reset, a key issued before it is refused as unknown: keys are numbered on, so
    the first key issued after the reset is not the old one (it would be another account's,
    and a stale key would silently act there)."""
    web = await assume(url, WEB, "OrganizationAccountAccessRole")
    status, _ = await control(url, "POST", "reset")
    assert status == 200
    other = await assume(url, SHOP, "Batchcopy", ExternalId="shop-1")
    assert other["aws_access_key_id"] != web["aws_access_key_id"]
    async with aws(url, "sts", **web) as sts:
        with pytest.raises(ClientError) as caught:
            await sts.get_caller_identity()
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"


async def test_expired_keys_answer_expired_token(emulator: Emulator, url: str) -> None:
    """Keys past their duration, or expired through the control API, answer
    ExpiredTokenException; keys issued afterwards work."""
    now = [1_800_000_000.0]
    emulator._clock = lambda: now[0]  # the emulator's injected clock, moved by hand
    emulator.reset()
    short = await assume(url, WEB, "OrganizationAccountAccessRole", DurationSeconds=900)
    now[0] += 901
    async with aws(url, "lightsail", **short) as ls:
        with pytest.raises(ClientError) as caught:
            await ls.get_instance_snapshots()
    assert caught.value.response["Error"]["Code"] == "ExpiredTokenException"

    fresh = await assume(url, WEB, "OrganizationAccountAccessRole")
    status, body = await control(url, "POST", "expire-credentials")
    assert (status, body) == (200, {"expired": 2})
    async with aws(url, "lightsail", **fresh) as ls:
        with pytest.raises(ClientError) as caught:
            await ls.get_instance_snapshots()
    assert caught.value.response["Error"]["Code"] == "ExpiredTokenException"
    again = await assume(url, WEB, "OrganizationAccountAccessRole")
    async with aws(url, "lightsail", **again) as ls:
        assert len((await ls.get_instance_snapshots())["instanceSnapshots"]) == 1


async def test_a_session_key_the_emulator_never_issued_is_unrecognized(url: str) -> None:
    """A made-up session key of the emulator's form is refused, not taken for the caller's."""
    fake = {"aws_access_key_id": "ASIAEMU0000000009999", "aws_secret_access_key": "x"}
    async with aws(url, "lightsail", **fake) as ls:
        with pytest.raises(ClientError) as caught:
            await ls.get_instance_snapshots()
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"


async def test_rate_limits_belong_to_each_account(emulator: Emulator, url: str) -> None:
    """A copy limit of one request with a burst of one throttles within an account, not
    across accounts: each account has its own bucket."""
    emulator.configure(FaultConfig.from_json({"copy_rate": 0.01, "copy_burst": 1}))
    for account, role, extra in (
        (WEB, "OrganizationAccountAccessRole", {}),
        (SHOP, "Batchcopy", {"ExternalId": "shop-1"}),
    ):
        creds = await assume(url, account, role, **extra)
        async with aws(url, "lightsail", **creds) as ls:
            await ls.tag_resource(resourceName="web-1-snap", tags=[{"key": "a"}])
            with pytest.raises(ClientError) as caught:
                await ls.tag_resource(resourceName="web-1-snap", tags=[{"key": "b"}])
            assert caught.value.response["Error"]["Code"] == "ThrottlingException"


async def org_pages(url: str, operation: str, **params: Any) -> list[dict[str, Any]]:
    """Every page a botocore paginator gets, each checked against the output shape."""
    async with aws(url, "organizations") as org:
        pages = [p async for p in org.get_paginator(operation).paginate(**params)]
    shape = ORG_MODEL.operation_model(_camel(operation)).output_shape
    for page in pages:
        page.pop("ResponseMetadata")
        assert_fits(json.loads(json.dumps(page, default=lambda t: t.timestamp())), shape)
    return pages


def _camel(snake: str) -> str:
    return "".join(part.title() for part in snake.split("_")).replace("Ou", "OU")


@pytest.mark.parametrize("empty_pages", [False, True])
async def test_organizations_lists_the_seeds_tree(
    emulator: Emulator, url: str, empty_pages: bool
) -> None:
    """Roots, units and accounts come from the seed's paths, page by page (empty pages with
    a token included, when asked for), in botocore's output shapes."""
    emulator.configure(FaultConfig.from_json({"page_size": 1, "empty_pages": empty_pages}))
    pages = await org_pages(url, "list_accounts")
    assert [a["Id"] for p in pages for a in p["Accounts"]] == [MANAGEMENT, WEB, SHOP, GONE]
    assert any(not p["Accounts"] for p in pages) == empty_pages
    assert {a["Id"]: a["Status"] for p in pages for a in p["Accounts"]}[GONE] == "SUSPENDED"

    (root,) = [r for p in await org_pages(url, "list_roots") for r in p["Roots"]]
    units = {
        u["Name"]: u["Id"]
        for p in await org_pages(url, "list_organizational_units_for_parent", ParentId=root["Id"])
        for u in p["OrganizationalUnits"]
    }
    assert set(units) == {"Prod", "Old"}
    web_units = await org_pages(url, "list_organizational_units_for_parent", ParentId=units["Prod"])
    (web_unit,) = [u for p in web_units for u in p["OrganizationalUnits"]]
    assert web_unit["Name"] == "Web"
    in_prod = await org_pages(url, "list_accounts_for_parent", ParentId=units["Prod"])
    assert [a["Id"] for p in in_prod for a in p["Accounts"]] == [SHOP]
    in_web = await org_pages(url, "list_accounts_for_parent", ParentId=web_unit["Id"])
    assert [a["Id"] for p in in_web for a in p["Accounts"]] == [WEB]
    at_root = await org_pages(url, "list_accounts_for_parent", ParentId=root["Id"])
    assert [a["Id"] for p in at_root for a in p["Accounts"]] == [MANAGEMENT]


async def test_organizations_answers_only_the_management_account(url: str) -> None:
    """A member account's keys are refused; an unknown parent is ParentNotFoundException."""
    web = await assume(url, WEB, "OrganizationAccountAccessRole")
    async with aws(url, "organizations", **web) as org:
        with pytest.raises(ClientError) as caught:
            await org.list_accounts()
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    async with aws(url, "organizations") as org:
        with pytest.raises(ClientError) as caught:
            await org.list_accounts_for_parent(ParentId="ou-none-00000000")
    assert caught.value.response["Error"]["Code"] == "ParentNotFoundException"


async def test_a_one_account_seed_has_no_organization() -> None:
    """The one-account format is account 123456789012, not in an organization; its copies
    keep their region/name keys."""
    async with running_emulator(Emulator(seed={"regions": {}})) as url:
        async with aws(url, "organizations") as org:
            with pytest.raises(ClientError) as caught:
                await org.list_accounts()
        async with aws(url, "sts") as sts:
            identity = await sts.get_caller_identity()
    assert caught.value.response["Error"]["Code"] == "AWSOrganizationsNotInUseException"
    assert identity["Account"] == "123456789012"


@pytest.mark.parametrize(
    ("seed", "where"),
    [
        ({"accounts": {"12345": {}}}, "accounts.12345: an account id is 12 digits"),
        ({"accounts": {WEB: {"roels": []}}}, f"accounts.{WEB}.roels: unknown key"),
        ({"accounts": {WEB: {"roles": ["bad name"]}}}, f"accounts.{WEB}.roles[0]"),
        ({"accounts": {WEB: {"state": "GONE"}}}, f"accounts.{WEB}.state"),
        ({"accounts": {WEB: {"ou": 7}}}, f"accounts.{WEB}.ou"),
        ({"accounts": {WEB: {}}, "caller": SHOP}, "caller"),
        (
            {"accounts": {WEB: {"regions": {"mars-1": {}}}}},
            f"accounts.{WEB}.regions.mars-1: not a Lightsail region",
        ),
        ({"accounts": {}}, "at least one account"),
    ],
)
def test_bad_account_seeds_name_the_place(seed: dict[str, Any], where: str) -> None:
    """A seed with accounts that cannot be loaded names the key that is wrong."""
    with pytest.raises(SeedError, match=where.replace("[", r"\[").replace("]", r"\]")):
        Emulator(seed=seed)


async def test_seeding_accounts_later_adds_them(emulator: Emulator, url: str) -> None:
    """POST /_emulator/seed with accounts adds an account that roles can then be assumed in."""
    new = "555555555555"
    status, _ = await control(url, "POST", "seed", {"accounts": {new: {"regions": {}}}})
    assert status == 200
    creds = await assume(url, new, "AnyRole")
    async with aws(url, "sts", **creds) as sts:
        assert (await sts.get_caller_identity())["Account"] == new


async def test_fault_settings_may_single_out_an_account(url: str) -> None:
    """ "accounts" in the fault settings overrides them for one account (its own keys, then
    its own regions); the other accounts keep the rest. A bad override is refused, named."""
    faults = {"accounts": {WEB: {"regions": {"us-east-1": {"error_rate": 1}}}}}
    assert (await control(url, "POST", "config", faults))[0] == 200
    web = await assume(url, WEB, "OrganizationAccountAccessRole")
    shop = await assume(url, SHOP, "Batchcopy", ExternalId="shop-1")
    async with aws(url, "lightsail", **web) as ls:
        with pytest.raises(ClientError) as caught:
            await ls.get_instance_snapshots()
    assert caught.value.response["Error"]["Code"] == "ServiceException"
    async with aws(url, "lightsail", **shop) as ls:
        assert len((await ls.get_instance_snapshots())["instanceSnapshots"]) == 1
    status, answer = await control(url, "POST", "config", {"accounts": {WEB: {"nope": 1}}})
    assert status == 400
    assert f"accounts.{WEB}.nope: unknown setting" in json.dumps(answer)
