"""At most one call per key in flight in this process; concurrent callers share its result."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    def __init__(self) -> None:
        self._calls: dict[K, asyncio.Task[T]] = {}

    async def do(self, key: K, call: Callable[[], Awaitable[T]]) -> T:
        """The result of ``call()``, or of the call already running for ``key``.

        The call runs in a task of its own: a caller that gives up (a client that
        disconnects) does not cancel it for the others.
        """
        task = self._calls.get(key)
        if task is None:
            task = asyncio.ensure_future(call())
            self._calls[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def forget(self, key: K) -> None:
        """Callers from now on start a new call, even if one is still running."""
        self._calls.pop(key, None)

    def forget_all(self) -> None:
        self._calls.clear()

    def in_flight(self) -> int:
        return len(self._calls)

    def _finished(self, key: K, task: asyncio.Task[T]) -> None:
        if self._calls.get(key) is task:
            del self._calls[key]
        if not task.cancelled():
            task.exception()  # retrieved here too, so an error nobody awaited is not reported as lost
