"""Fixtures for the real stack: settings, adapters, and per-test isolated topic families.

The stack must be up (`damai stack up && damai db migrate`, which `make test` does);
nothing here fakes a service.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from cli.provision import provision_namespace, remove_namespace
from infra import stack
from infra.kafka import EventPublisher
from infra.postgres.pools import ShardPools
from infra.redis import create_redis
from infra.search import create_elasticsearch
from infra.settings import Settings, get_settings

# Area codes handed to tests: distinct across tests and across runs on one stack.
_area_codes = itertools.count(100000 + (int(time.time() * 10) % 800000))


@pytest.fixture(scope="session")
def settings() -> Settings:
    base = get_settings()
    down = [s.name for s in stack.status(base) if not s.healthy]
    if down:
        pytest.exit(f"the stack is not up ({', '.join(down)} down): run `make test` or `damai stack up`", 2)
    return base


def isolated_copy(settings: Settings) -> Settings:
    return settings.namespaced(f"t{uuid.uuid4().hex[:10]}")


@pytest_asyncio.fixture
async def isolated(settings: Settings) -> AsyncIterator[Settings]:
    """A namespace of its own (topics, indices, schema) for one test, removed afterwards."""
    iso = isolated_copy(settings)
    await provision_namespace(iso)
    yield iso
    await remove_namespace(iso)


@pytest.fixture
def area_code() -> int:
    return next(_area_codes)


@pytest_asyncio.fixture
async def pools(isolated: Settings) -> AsyncIterator[ShardPools]:
    """Pools on the test's own schema in every shard database."""
    shard_pools = ShardPools(isolated.postgres)
    await shard_pools.start()
    yield shard_pools
    await shard_pools.stop()


@pytest_asyncio.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = create_redis(settings.redis)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(scope="session")
async def es(settings: Settings) -> AsyncIterator[AsyncElasticsearch]:
    client = create_elasticsearch(settings.elasticsearch)
    yield client
    await client.close()


@pytest_asyncio.fixture
async def publisher(isolated: Settings) -> AsyncIterator[EventPublisher]:
    pub = EventPublisher(isolated.kafka)
    await pub.start()
    yield pub
    await pub.stop()
