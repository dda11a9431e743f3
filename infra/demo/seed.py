"""Publishing the demo data through the command handlers; what already exists is left alone."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from commands.reference import KnownAreas, KnownCategories, create_area, create_category
from events.envelope import EventEnvelope
from infra.demo.areas import demo_area_commands
from infra.demo.categories import demo_category_commands
from infra.kafka import EventPublisher
from infra.postgres.pools import ShardPools
from infra.postgres.views.reference import category_parents, existing_area_ids
from infra.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Seeded:
    areas: int
    categories: int


async def seed_demo(settings: Settings) -> Seeded:
    """Append the demo reference data not yet in the read model; return how much was appended."""
    pools = ShardPools(settings.postgres)
    publisher = EventPublisher(settings.kafka)
    await pools.start()
    await publisher.start()
    try:
        areas = await _area_events(pools)
        categories = await _category_events(pools)
        await publisher.publish_many(areas + categories)
        log.info("seed.demo", areas=len(areas), categories=len(categories))
        return Seeded(len(areas), len(categories))
    finally:
        await publisher.stop()
        await pools.stop()


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
