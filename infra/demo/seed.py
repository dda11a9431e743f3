"""Publishing the demo data through the command handlers; areas that exist are left alone."""

from __future__ import annotations

import structlog

from commands.reference import KnownAreas, create_area
from events.envelope import EventEnvelope
from infra.demo.areas import demo_area_commands
from infra.kafka import EventPublisher
from infra.postgres.pools import ShardPools
from infra.postgres.views.reference import existing_area_ids
from infra.settings import Settings

log = structlog.get_logger(__name__)


async def seed_areas(settings: Settings) -> int:
    """Append AreaCreated for every demo area not yet in the read model; return how many."""
    commands = demo_area_commands()
    pools = ShardPools(settings.postgres)
    publisher = EventPublisher(settings.kafka)
    await pools.start()
    await publisher.start()
    try:
        existing = await existing_area_ids(pools, [c.area_id for c in commands])
        # Parents are decided before their children in this same run, so they count as known.
        known_ids = set(existing)
        envelopes: list[EventEnvelope] = []
        for cmd in commands:
            if cmd.area_id in existing:
                continue
            event = create_area(cmd, KnownAreas(known_ids))
            known_ids.add(cmd.area_id)
            envelopes.append(EventEnvelope.wrap(event, aggregate_version=1))
        await publisher.publish_many(envelopes)
        log.info("seed.areas", published=len(envelopes), already_there=len(existing))
        return len(envelopes)
    finally:
        await publisher.stop()
        await pools.stop()
