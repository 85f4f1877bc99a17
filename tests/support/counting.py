"""A storage wrapper that counts what is listed and read, passing everything through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any


class Counting:
    """The storage, counting what is listed and read (its own ``list`` and ``read``;
    everything else is the wrapped store's)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.listed: list[str] = []
        self.reads: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def list(self, prefix: str, **kwargs: Any) -> AsyncIterator[Any]:
        self.listed.append(prefix)
        async for obj in self._store.list(prefix, **kwargs):
            yield obj

    async def read(self, key: str, *args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        self.reads.append(key)
        async for chunk in self._store.read(key, *args, **kwargs):
            yield chunk
