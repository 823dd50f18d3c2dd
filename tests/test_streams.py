"""Streams between the engine's stages: nothing lost or reordered, and buffered items taken
without a trip through the event loop each (which capped whole runs at the loop's pace)."""

from __future__ import annotations

import anyio

from batchcopy.streams import each, put


async def test_every_item_arrives_in_order_and_the_stream_ends() -> None:
    send, receive = anyio.create_memory_object_stream[int](4)
    got: list[int] = []

    async def consume() -> None:
        async with receive:
            got.extend([item async for item in each(receive)])

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        async with send:
            for i in range(50):  # more than the buffer holds: put waits for room
                await put(send, i)
    assert got == list(range(50))


async def test_buffered_items_are_taken_in_one_turn_of_the_loop() -> None:
    """A busy event loop takes milliseconds a turn: a stage that took one item per turn
    would cap the run at a few hundred jobs a second."""
    send, receive = anyio.create_memory_object_stream[int](100)
    turns = 0
    draining = anyio.Event()

    async def tick() -> None:
        nonlocal turns
        await draining.wait()
        while True:
            turns += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        for i in range(100):
            await put(send, i)
        send.close()
        draining.set()
        await anyio.lowlevel.checkpoint()  # the ticker is now running
        before = turns
        with receive:
            got = [item async for item in each(receive)]
        tg.cancel_scope.cancel()
    assert got == list(range(100))
    assert turns - before <= 1
