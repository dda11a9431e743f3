"""Publishing the demo data through the command handlers; what already exists is left alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from cli.demo.areas import demo_area_commands
from cli.demo.categories import demo_category_commands
from cli.demo.programs import demo_program_commands
from commands.program import KnownReferences, create_program, publish_program
from commands.reference import KnownAreas, KnownCategories, create_area, create_category
from events.envelope import EventEnvelope
from events.program import ProgramEvent
from infra.ids import IdService
from infra.kafka import EventPublisher
from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.redis import LuaScripts, create_redis
from infra.redis_keys import program_version_counter
from infra.settings import Settings
from infra.versions import reserve_versions
from queries.views.programs import full_route_program_ids_by_title
from queries.views.reference import category_parents, existing_area_ids

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Seeded:
    areas: int
    categories: int
    programs: int = 0


async def seed_demo(settings: Settings, *, seed: int | None = None, limit: int | None = None) -> Seeded:
    """Append the demo data not yet in the read model; return how much was appended.

    Reference data always; with a ``seed``, also the demo catalogue of programs (the first
    ``limit`` of them, if given), idempotent by title: a program whose title exists is left alone.
    """
    pools = ShardPools(settings.postgres)
    publisher = EventPublisher(settings.kafka)
    redis = create_redis(settings.redis)
    scripts = LuaScripts(redis)
    await pools.start()
    await publisher.start()
    try:
        areas = await _area_events(pools)
        categories = await _category_events(pools)
        await publisher.publish_many(areas + categories)
        programs = 0
        if seed is not None:
            async with IdService.start(redis, scripts, settings.ids) as ids:
                db = ShardedDatabase(pools, shard_layout(settings))
                programs = await _publish_programs(db, publisher, scripts, ids, seed, limit)
        log.info("seed.demo", areas=len(areas), categories=len(categories), programs=programs)
        return Seeded(len(areas), len(categories), programs)
    finally:
        await publisher.stop()
        await redis.aclose()
        await pools.stop()


async def _publish_programs(
    db: ShardedDatabase, publisher: EventPublisher, scripts: LuaScripts, ids: IdService, seed: int, limit: int | None
) -> int:
    now = datetime.now(UTC)
    wanted = demo_program_commands(seed, now)[:limit]
    existing = await full_route_program_ids_by_title(db, [cmd.title for cmd, _ in wanted])
    # The reference data was appended just before; its projection may still be on its way.
    refs = KnownReferences({a.area_id for a in demo_area_commands()}, _demo_category_parents())
    published = 0
    for cmd, on_sale in wanted:
        if cmd.title in existing:
            continue
        events: list[ProgramEvent] = create_program(cmd, refs, ids, now)
        if on_sale:
            events.append(publish_program(events[0].program_id, "draft"))
        first = await reserve_versions(scripts, program_version_counter(events[0].program_id), len(events), 0)
        await publisher.publish_many([EventEnvelope.wrap(e, aggregate_version=first + i) for i, e in enumerate(events)])
        published += 1
    return published


def _demo_category_parents() -> dict[int, int | None]:
    return {c.category_id: c.parent_id for c in demo_category_commands()}


async def _area_events(pools: ShardPools) -> list[EventEnvelope]:
    commands = demo_area_commands()
    existing = await existing_area_ids(pools, [c.area_id for c in commands])
    # Parents are decided before their children in this same run, so they count as known.
    known = set(existing)
    envelopes = []
    for cmd in commands:
        if cmd.area_id not in existing:
            envelopes.append(EventEnvelope.wrap(create_area(cmd, KnownAreas(known)), aggregate_version=1))
            known.add(cmd.area_id)
    return envelopes


async def _category_events(pools: ShardPools) -> list[EventEnvelope]:
    commands = demo_category_commands()
    existing = await category_parents(pools, [c.category_id for c in commands])
    known = dict(existing)
    envelopes = []
    for cmd in commands:
        if cmd.category_id not in existing:
            event = create_category(cmd, KnownCategories(known))
            envelopes.append(EventEnvelope.wrap(event, aggregate_version=1))
            known[cmd.category_id] = cmd.parent_id
    return envelopes
