"""Shared fixtures: an emulator on 127.0.0.1, real aiobotocore clients, raw wire calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from batchcopy.emulator import Emulator, FaultConfig, running_emulator
from tests.helpers import EmulatorProcess

SMALL_SEED: dict[str, Any] = {
    "regions": {
        "us-east-1": {
            "instances": [{"name": "web-1", "sizeInGb": 80}],
            "disks": [{"name": "data-1", "sizeInGb": 256}],
            "instanceSnapshots": [
                {"name": "web-1-snap", "fromInstanceName": "web-1", "sizeInGb": 80}
            ],
            "diskSnapshots": [{"name": "data-1-snap", "fromDiskName": "data-1", "sizeInGb": 256}],
            "autoSnapshots": {
                "web-1": ["2026-11-18", "2026-11-19", "2026-11-20"],
                "data-1": ["2026-11-20"],
            },
        }
    }
}


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reads the developer's AWS files or cache, or reaches anything but loopback."""
    empty = tmp_path_factory.mktemp("aws") / "none"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "emulator-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Learned rates are remembered in a file of the test's own, never the user's cache.
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("BATCHCOPY_RATE_STATE", str(cache / "rates.json"))
    for name in (
        # Nothing of a CI runner's own AWS identity (containers, OIDC, SSO) is picked up.
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_LIGHTSAIL",
        "AWS_ENDPOINT_URL_STS",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(seed=SMALL_SEED, faults=FaultConfig())


@pytest.fixture
async def url(emulator: Emulator) -> AsyncIterator[str]:
    async with running_emulator(emulator) as served:
        yield served


ClientFactory = Callable[[str], AbstractAsyncContextManager[Any]]


@pytest.fixture
def client(url: str) -> ClientFactory:
    """``async with client("eu-west-1") as ls:`` gives a real aiobotocore Lightsail client."""
    config = AioConfig(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=5)

    def make(region: str) -> AbstractAsyncContextManager[Any]:
        return get_session().create_client(
            "lightsail", region_name=region, endpoint_url=url, config=config
        )

    return make


async def raw_call(
    url: str,
    action: str,
    params: Any = None,
    *,
    region: str | None = "us-east-1",
    body: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    """POST one request as the wire protocol has it; returns status, headers and parsed body."""
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"Lightsail_20161128.{action}",
    }
    if region is not None:
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/{region}/lightsail/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=0000"
        )
    data = body if body is not None else json.dumps(params or {}).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=data, headers=headers) as resp,
    ):
        text = await resp.read()
        return resp.status, dict(resp.headers), json.loads(text)


async def control(url: str, method: str, path: str, payload: Any = None) -> Any:
    """Call the emulator's control API."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{url}/_emulator/{path}", json=payload) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorProcess]:
    """An emulator subprocess (demo data) shared by one test module."""
    process = EmulatorProcess()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def live(server: EmulatorProcess) -> EmulatorProcess:
    """The module's emulator subprocess, reset to its demo data with counters at zero."""
    server.control("POST", "reset")
    return server
