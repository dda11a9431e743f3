"""The stores a worker projects into (``bootstrap.Adapters``), started and stopped with the Faust app."""

from __future__ import annotations

import asyncio

from mode import Service

from bootstrap import Adapters
from infra.settings import Settings


class Stores(Service):
    def __init__(self, settings: Settings):
        super().__init__()
        self.adapters = Adapters.create(settings)
        self._ready = asyncio.Event()

    async def on_start(self) -> None:
        await self.adapters.start()
        self._ready.set()

    async def on_stop(self) -> None:
        await self.adapters.close()

    async def wait_ready(self) -> None:
        await self._ready.wait()
