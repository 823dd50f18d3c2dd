"""A server on 127.0.0.1 that answers chosen Lightsail actions wrongly, in front of the emulator.

Every request goes to the emulator; for the actions named in ``bad`` the answer is replaced
by ``body`` with status 200 (an HTML page, an empty body, ``{}``, broken JSON...). With
``commit=True`` the emulator sees the request first (a copy is made, then the answer is
garbage); otherwise the request never reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

TARGET_PREFIX = "Lightsail_20161128."


@dataclass(slots=True)
class Answers:
    """What the server does; change it between runs."""

    bad: set[str] = field(default_factory=set)  # action names, e.g. "CopySnapshot"
    body: str = "<html><body>Service Unavailable</body></html>"
    commit: bool = False
    trickle: float = 0.0  # seconds between the bytes of a bad answer (0: all at once)
    served: dict[str, int] = field(default_factory=dict)  # bad answers given, per action


@contextlib.asynccontextmanager
async def malicious_server(emulator_url: str, answers: Answers) -> AsyncIterator[str]:
    """Serve on a free port of 127.0.0.1; yields the URL to give as the endpoint."""

    async def handle(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        action = request.headers.get("X-Amz-Target", "").removeprefix(TARGET_PREFIX)
        if not action:  # STS speaks the query protocol: the action is in the form
            action = urllib.parse.parse_qs(raw.decode(errors="replace")).get("Action", [""])[0]
        if action in answers.bad and not answers.commit:
            return await _bad(request, answers, action)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(emulator_url + request.path, data=raw, headers=headers) as upstream,
        ):
            body = await upstream.read()
            if action in answers.bad:
                return await _bad(request, answers, action)
            return web.Response(
                body=body, status=upstream.status, content_type=upstream.content_type
            )

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _bad(request: web.Request, answers: Answers, action: str) -> web.StreamResponse:
    answers.served[action] = answers.served.get(action, 0) + 1
    body = answers.body.encode()
    if not answers.trickle:
        return web.Response(body=body, status=200, content_type="text/html")
    response = web.StreamResponse(status=200, headers={"Content-Length": str(len(body))})
    await response.prepare(request)
    for i in range(len(body)):  # bounded: the body's length, then the answer is whole
        await response.write(body[i : i + 1])
        await asyncio.sleep(answers.trickle)
    await response.write_eof()
    return response
