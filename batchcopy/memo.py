"""Look-ups made once per key, however many tasks ask for them at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable

import anyio

__all__ = ["Memo"]


class Memo:
    """Each key's ``load()`` runs once; tasks asking meanwhile wait for its value. A load
    that raises is not kept: the next ask tries again."""

    def __init__(self) -> None:
        self._values: dict[Hashable, object] = {}
        self._locks: dict[Hashable, anyio.Lock] = {}

    def __repr__(self) -> str:
        return f"<Memo {len(self._values)} values>"

    async def get(self, key: Hashable, load: Callable[[], Awaitable[object]]) -> object:
        if key in self._values:  # the common case: no lock, no trip through the event loop
            return self._values[key]
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = anyio.Lock()
        async with lock:
            if key not in self._values:
                self._values[key] = await load()
        return self._values[key]
