"""The adapters the API holds for its lifetime, opened at start and closed at stop."""

from __future__ import annotations

from collections.abc import Hashable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated
from zoneinfo import ZoneInfo

import structlog
from elasticsearch import AsyncElasticsearch
from elasticsearch import ConnectionError as SearchConnectionError
from fastapi import Depends, Request
from redis.asyncio import Redis

from infra.ids import IdService
from infra.kafka import EventPublisher
from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.redis import LuaScripts, create_redis
from infra.search import apply_index_templates, create_elasticsearch, index_name
from infra.settings import Settings
from queries.cache import ProgramDetailCache, RemainingCounts
from queries.cache.micro import MicroCache
from queries.search import ProgramSearch

log = structlog.get_logger(__name__)


@dataclass
class Resources:
    settings: Settings
    publisher: EventPublisher
    redis: Redis
    scripts: LuaScripts
    pools: ShardPools
    es: AsyncElasticsearch
    ids: IdService
    shards: ShardedDatabase
    program_details: ProgramDetailCache
    remaining: RemainingCounts
    search: ProgramSearch
    search_pages: MicroCache[Hashable, bytes]
    seat_maps: MicroCache[tuple[int, int, int | None], bytes]
    _exit: AsyncExitStack

    @classmethod
    async def open(cls, settings: Settings) -> Resources:
        publisher = EventPublisher(settings.kafka)
        await publisher.start()
        redis = create_redis(settings.redis)
        scripts = LuaScripts(redis)
        await scripts.preload(redis)
        pools = ShardPools(settings.postgres)
        await pools.start()
        es = create_elasticsearch(settings.elasticsearch)
        try:
            await apply_index_templates(es, settings.elasticsearch)
        except SearchConnectionError as exc:
            # Search is the one store the API can live without (queries fall back to
            # Postgres); /readyz reports it and the worker applies templates when it is back.
            log.warning("api.search_unavailable_at_start", error=repr(exc))
        exit_stack = AsyncExitStack()
        ids = await exit_stack.enter_async_context(IdService.start(redis, scripts, settings.ids))
        shards = ShardedDatabase(pools, shard_layout(settings))
        program_details = ProgramDetailCache.open(shards, settings)
        await program_details.start()
        exit_stack.push_async_callback(program_details.stop)
        remaining = RemainingCounts.open(settings)
        exit_stack.push_async_callback(remaining.close)
        search = ProgramSearch(
            es,
            index_name(settings.elasticsearch, "program"),
            shards,
            ZoneInfo(settings.api.timezone),
            settings.elasticsearch.retry_after_s,
        )
        search_pages: MicroCache[Hashable, bytes] = MicroCache(
            "search_pages", settings.api.search_cache_ttl_s, settings.api.search_cache_max_entries
        )
        seat_maps: MicroCache[tuple[int, int, int | None], bytes] = MicroCache(
            "seat_maps", settings.program_cache.seat_map_ttl_s, settings.program_cache.local_max_entries
        )
        return cls(
            settings,
            publisher,
            redis,
            scripts,
            pools,
            es,
            ids,
            shards,
            program_details,
            remaining,
            search,
            search_pages,
            seat_maps,
            exit_stack,
        )

    async def close(self) -> None:
        await self._exit.aclose()
        await self.publisher.stop()
        await self.redis.aclose()
        await self.pools.stop()
        await self.es.close()


def resources_of(request: Request) -> Resources:
    """The resources, read straight from the app. The hottest route (a program's detail) uses this
    instead of the dependency: solving a dependency costs about 15 µs a request (bench/README.md)."""
    res: Resources = request.app.state.resources
    return res


async def resources(request: Request) -> Resources:
    # async on purpose: FastAPI runs a plain-def dependency in its thread pool, which on a hot
    # route costs a thread hand-off (and a GIL wait of up to 5 ms) per request.
    return resources_of(request)


ResourcesDep = Annotated[Resources, Depends(resources)]
