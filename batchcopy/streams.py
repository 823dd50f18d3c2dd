"""Memory object streams without a trip through the event loop per item.

anyio's ``send`` and ``receive`` yield to the event loop once per item, even when the item
is already buffered or there is room for it. A busy loop (hundreds of requests open) takes
milliseconds a round, so a stage that moves one item per round caps the whole run: the
dispatcher, the lanes and the report all sat at a few hundred jobs a second while
the requests themselves could go several times faster. These helpers take what is there
at once and only wait (and so yield) when there is nothing to take or no room.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["each", "put"]

T = TypeVar("T")


async def put(stream: MemoryObjectSendStream[T], item: T) -> None:
    """Send ``item``; wait only if the buffer is full."""
    try:
        stream.send_nowait(item)
    except anyio.WouldBlock:
        await stream.send(item)


class each(Generic[T]):  # a class named as the function it stands for: ``async for x in each(s)``
    """Every item of ``stream`` until it ends; wait only when none is buffered."""

    def __init__(self, stream: MemoryObjectReceiveStream[T]) -> None:
        self._stream = stream

    def __aiter__(self) -> each[T]:
        return self

    async def __anext__(self) -> T:
        try:
            try:
                return self._stream.receive_nowait()
            except anyio.WouldBlock:
                return await self._stream.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None
