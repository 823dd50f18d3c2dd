"""A server on 127.0.0.1 that answers chosen Lightsail actions wrongly, in front of the emulator.

Every request goes to the emulator; for the actions named in ``bad`` the answer is replaced
by ``body`` with status 200 (an HTML page, an empty body, ``{}``, broken JSON...). With
``commit=True`` the emulator sees the request first (a copy is made, then the answer is
garbage); otherwise the request never reaches it. ``rewrite`` changes the emulator's own
answer to an action (a wrong field, a failed operation, a new page token each time) into a
200 answer, ``drop`` closes the connection after the emulator has answered, and
``redirect`` answers every request with a redirect elsewhere, ``refuse`` answers an
action with a chosen error without asking the emulator, and ``after`` holds an action until
another has arrived (calls sent one after the other, not at once, are answered as ``bad``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

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
    serving: asyncio.Event = field(default_factory=asyncio.Event)  # a bad answer has begun
    # Per action: the emulator's answer (parsed JSON) -> the answer given instead.
    rewrite: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    drop: set[str] = field(default_factory=set)  # answered by the emulator, then cut off
    redirect: str = ""  # a URL every request is sent on to with a 307, when set
    status: int = 307
    # Per action: (status, JSON body) answered at once; the emulator never sees the request.
    refuse: dict[str, tuple[int, Any]] = field(default_factory=dict)
    # Per action: another that must arrive (within ``hold`` seconds) before this one is
    # passed on; if it does not, this one is answered as ``bad``.
    after: dict[str, str] = field(default_factory=dict)
    hold: float = 2.0
    arrived: dict[str, asyncio.Event] = field(default_factory=dict)

    def arrival(self, action: str) -> asyncio.Event:
        return self.arrived.setdefault(action, asyncio.Event())


@contextlib.asynccontextmanager
async def malicious_server(emulator_url: str, answers: Answers) -> AsyncIterator[str]:
    """Serve on a free port of 127.0.0.1; yields the URL to give as the endpoint."""

    async def handle(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        action = request.headers.get("X-Amz-Target", "").removeprefix(TARGET_PREFIX)
        if not action:  # STS speaks the query protocol: the action is in the form
            action = urllib.parse.parse_qs(raw.decode(errors="replace")).get("Action", [""])[0]
        answers.arrival(action).set()
        if action in answers.after:
            try:
                await asyncio.wait_for(answers.arrival(answers.after[action]).wait(), answers.hold)
            except TimeoutError:
                return await _bad(request, answers, action)
        if answers.redirect:
            answers.served[action] = answers.served.get(action, 0) + 1
            location = answers.redirect + request.path
            return web.Response(status=answers.status, headers={"Location": location})
        if action in answers.bad and not answers.commit:
            return await _bad(request, answers, action)
        if action in answers.refuse:
            answers.served[action] = answers.served.get(action, 0) + 1
            status, refusal = answers.refuse[action]
            return web.json_response(refusal, status=status)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(emulator_url + request.path, data=raw, headers=headers) as upstream,
        ):
            body = await upstream.read()
            if action in answers.bad:
                return await _bad(request, answers, action)
            if action in answers.drop:
                answers.served[action] = answers.served.get(action, 0) + 1
                assert request.transport is not None
                request.transport.abort()  # the emulator has done it; its answer is lost
                return web.Response()
            if action in answers.rewrite:
                answers.served[action] = answers.served.get(action, 0) + 1
                rewritten = answers.rewrite[action](json.loads(body))
                return web.json_response(rewritten)  # a 200, whatever the emulator said
            return web.Response(
                body=body, status=upstream.status, content_type=upstream.content_type
            )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
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
    answers.serving.set()
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
