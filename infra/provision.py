"""After the services are up: the topics, index templates and schema the system expects."""

from __future__ import annotations

from infra.kafka import ensure_topics
from infra.postgres.migrations import migrate_all
from infra.postgres.pools import ShardPools
from infra.search import apply_index_templates, create_elasticsearch
from infra.settings import Settings


def consumer_groups(settings: Settings) -> list[str]:
    """Every consumer group that owns a dead-letter topic."""
    return [settings.worker.projector_group]


async def create_topics(settings: Settings) -> list[str]:
    return await ensure_topics(settings.kafka, consumer_groups(settings))


async def apply_templates(settings: Settings) -> None:
    es = create_elasticsearch(settings.elasticsearch)
    try:
        await apply_index_templates(es, settings.elasticsearch)
    finally:
        await es.close()


async def migrate(settings: Settings) -> dict[str, list[str]]:
    pools = ShardPools(settings.postgres)
    await pools.start()
    try:
        return await migrate_all(pools)
    finally:
        await pools.stop()
