"""The stores a worker projects into, started and stopped with the Faust app."""

from __future__ import annotations

import asyncio

import structlog
from elasticsearch import AsyncElasticsearch
from elasticsearch import ConnectionError as SearchConnectionError
from mode import Service

from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.redis import LuaScripts, create_redis
from infra.search import apply_index_templates, create_elasticsearch
from infra.settings import Settings

log = structlog.get_logger(__name__)


class Stores(Service):
    def __init__(self, settings: Settings):
        super().__init__()
        self._settings = settings
        self.pools = ShardPools(settings.postgres)
        self.layout = shard_layout(settings)
        self.redis = create_redis(settings.redis)
        self.scripts = LuaScripts(self.redis)
        self.es: AsyncElasticsearch = create_elasticsearch(settings.elasticsearch)
        self._ready = asyncio.Event()

    async def on_start(self) -> None:
        await self.pools.start()
        try:
            await apply_index_templates(self.es, self._settings.elasticsearch)
        except SearchConnectionError as exc:
            # `damai stack up` stored the templates already; projectors retry their
            # search writes until Elasticsearch is back, Postgres projection goes on.
            log.warning("worker.search_unavailable_at_start", error=repr(exc))
        self._ready.set()

    async def on_stop(self) -> None:
        await self.pools.stop()
        await self.redis.aclose()
        await self.es.close()

    async def wait_ready(self) -> None:
        await self._ready.wait()
