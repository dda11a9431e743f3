"""After the services are up: the topics, index templates and schema the system expects, and the
command side's snapshot coverage of its logs (ADR 0007).

A namespace (``Settings.namespaced``) gets its own set of all of them; ``remove_namespace``
deletes them again and refuses to touch the default namespace.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from aggregates.base import Aggregate
from aggregates.ownership import EmailOwnership, MobileOwnership
from aggregates.pay_bill import PayBill
from aggregates.program import Program
from aggregates.reference import Area, Category
from aggregates.user import User
from infra.aggregate_store import RebuiltSnapshots, cover_empty_partitions, rebuild_snapshots
from infra.kafka import ensure_topics
from infra.postgres.migrations import VerifyReport, migrate_all, verify_all
from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.redis import LuaScripts, create_redis
from infra.redis_keys import (
    aggregate_snapshots_pattern,
    program_keys_pattern,
    program_of_key,
    projector_offsets,
    snapshot_coverage,
)
from infra.search import apply_index_templates, create_elasticsearch, index_templates
from infra.settings import ElasticsearchSettings, KafkaSettings, PostgresSettings, ProgramCacheSettings, Settings
from queries.cache.keys import ProgramCacheKeys
from queries.views.programs import full_route_program_ids

log = structlog.get_logger(__name__)

SNAPSHOTTED: dict[str, type[Aggregate]] = {
    "program": Program,
    "user": User,
    "mobile": MobileOwnership,
    "email": EmailOwnership,
    "area": Area,
    "category": Category,
    "payment": PayBill,
}
"""The aggregates the command side loads through its aggregate store, by the kind in their key
(``user`` in ``user-42``). Their topic families are appended to by the store alone, so it can keep
each partition's snapshot coverage (ADR 0007)."""


def snapshotted_families() -> list[str]:
    return sorted({cls.topic_family for cls in SNAPSHOTTED.values()})


def consumer_groups(settings: Settings) -> list[str]:
    """Every consumer group that owns a dead-letter topic."""
    return [settings.worker.projector_group]


async def create_topics(settings: Settings) -> list[str]:
    """The topics, then the snapshot coverage of the store's logs: recorded at once for an empty
    partition, rebuilt from the log for one that holds events and has none (Redis lost it)."""
    created = await ensure_topics(settings.kafka, consumer_groups(settings))
    await cover_snapshots(settings)
    return created


async def cover_snapshots(settings: Settings, rebuild_all: bool = False) -> list[RebuiltSnapshots]:
    """Snapshot coverage for every partition of the store's logs. A partition with events and no
    coverage (or every partition, with ``rebuild_all``) has its snapshots rebuilt from the log first:
    one read of it, proportional to its size (``damai rebuild snapshots``)."""
    redis = create_redis(settings.redis)
    scripts = LuaScripts(redis)
    reports = []
    try:
        for family in snapshotted_families():
            uncovered = await cover_empty_partitions(settings, redis, scripts, family)
            if uncovered or rebuild_all:
                partitions = None if rebuild_all else uncovered
                reports.append(await rebuild_snapshots(settings, redis, scripts, family, SNAPSHOTTED, partitions))
    finally:
        await redis.aclose()
    return reports


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
        return await migrate_all(pools, shard_layout(settings))
    finally:
        await pools.stop()


async def verify_schema(settings: Settings) -> VerifyReport:
    pools = ShardPools(settings.postgres)
    await pools.start()
    try:
        return await verify_all(pools, shard_layout(settings))
    finally:
        await pools.stop()


async def provision_namespace(settings: Settings) -> None:
    """Topics, index templates and migrated schema for ``settings``' namespace."""
    await create_topics(settings)
    await apply_templates(settings)
    await migrate(settings)


def _is_default_namespace(settings: Settings) -> bool:
    return (
        settings.kafka.topic_prefix == KafkaSettings().topic_prefix
        or settings.elasticsearch.index_prefix == ElasticsearchSettings().index_prefix
        or settings.postgres.schema_name == PostgresSettings().schema_name
        or settings.program_cache.key_prefix == ProgramCacheSettings().key_prefix
    )


async def remove_namespace(settings: Settings) -> None:
    """Delete a namespace's topics, indices, templates, schema, program keys and cache keys (never
    the default namespace)."""
    if _is_default_namespace(settings):
        raise ValueError("refusing to remove the default namespace")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        # Faust's own topics (e.g. the assignor's leader topic) are named after the consumer group.
        prefixes = (settings.kafka.topic_prefix, *(f"{group}-" for group in consumer_groups(settings)))
        topics = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()
    es = create_elasticsearch(settings.elasticsearch)
    try:
        prefix = settings.elasticsearch.index_prefix
        indices = list(await es.indices.get(index=f"{prefix}*", expand_wildcards="all"))
        if indices:  # by name: wildcard deletes are disabled on purpose
            await es.indices.delete(index=",".join(indices))
        for name in index_templates(settings.elasticsearch):
            # 404: a removal that stopped half-way already deleted it; removing is idempotent.
            await es.options(ignore_status=404).indices.delete_index_template(name=name)
    finally:
        await es.close()
    pools = ShardPools(settings.postgres)
    await pools.start()
    redis = create_redis(settings.redis)
    try:
        # Program keys carry the program's id, not the namespace: find the namespace's programs
        # first, then their keys in one pass over the program keys.
        ours: set[int] = set()
        async for program_ids in full_route_program_ids(ShardedDatabase(pools, shard_layout(settings))):
            ours.update(program_ids)
        if ours:
            await _delete_matching(redis, program_keys_pattern(), lambda key: program_of_key(key) in ours)
        for _, pool in pools:
            await pool.execute(f'DROP SCHEMA IF EXISTS "{settings.postgres.schema_name}" CASCADE')
        await _delete_matching(redis, ProgramCacheKeys(settings.program_cache).pattern())
        await _delete_matching(redis, aggregate_snapshots_pattern(settings.kafka.topic_prefix))
        await redis.delete(*(snapshot_coverage(settings.kafka.topic(f)) for f in snapshotted_families()))
        for group in consumer_groups(settings):
            await _delete_matching(redis, projector_offsets(f"{group}*"))
    finally:
        await redis.aclose()
        await pools.stop()


async def _delete_matching(redis: Redis, pattern: str, where: Callable[[bytes], bool] = lambda _: True) -> None:
    """Unlink the keys matching ``pattern`` (and ``where``)."""
    keys = [key async for key in redis.scan_iter(match=pattern, count=1_000) if where(key)]
    if keys:
        await redis.unlink(*keys)
