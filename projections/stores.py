"""The stores a worker projects into, started and stopped with the Faust app."""

from __future__ import annotations

import asyncio

from elasticsearch import AsyncElasticsearch
from mode import Service

from infra.postgres.pools import ShardPools
from infra.search import apply_index_templates, create_elasticsearch
from infra.settings import Settings


class Stores(Service):
    def __init__(self, settings: Settings):
        super().__init__()
        self._settings = settings
        self.pools = ShardPools(settings.postgres)
        self.es: AsyncElasticsearch = create_elasticsearch(settings.elasticsearch)
        self._ready = asyncio.Event()

    async def on_start(self) -> None:
        await self.pools.start()
        await apply_index_templates(self.es, self._settings.elasticsearch)
        self._ready.set()

    async def on_stop(self) -> None:
        await self.pools.stop()
        await self.es.close()

    async def wait_ready(self) -> None:
        await self._ready.wait()
