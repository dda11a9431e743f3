"""`damai seed demo` publishes the reference data through the commands, once."""

from __future__ import annotations

from datetime import UTC, datetime

from cli.demo.areas import DEMO_AREAS
from cli.demo.categories import DEMO_CATEGORIES
from cli.demo.programs import demo_program_commands
from cli.demo.seed import Seeded, seed_demo
from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from queries.views import programs
from tests.e2e.conftest import System
from tests.processes import eventually

PROJECTED_S = 60
SEED, PROGRAMS = 7, 4


async def test_demo_data_lands_and_seeding_again_adds_nothing(system: System):
    first = await seed_demo(system.settings)

    async def projected() -> bool:
        categories = (await system.http.get("/api/v1/categories")).json()
        areas = (await system.http.get("/api/v1/areas")).json()
        return (
            len(categories) == len(DEMO_CATEGORIES)
            and len(areas) == len(DEMO_AREAS)
            and all(c["children"] for c in categories)
        )

    await eventually(projected, PROJECTED_S, "the demo reference data")
    again = await seed_demo(system.settings)

    assert first == Seeded(areas=len(DEMO_AREAS), categories=sum(1 + len(c) for _, _, c in DEMO_CATEGORIES))
    assert again == Seeded(areas=0, categories=0)
    names = [c["name"] for c in (await system.http.get("/api/v1/categories")).json()]
    assert names[:3] == ["演唱会", "话剧歌剧", "音乐会"]


async def test_demo_programs_land_published_and_seeding_again_adds_none(system: System):
    wanted = [cmd for cmd, _ in demo_program_commands(SEED, datetime.now(UTC))[:PROGRAMS]]
    pools = ShardPools(system.settings.postgres)
    await pools.start()
    db = ShardedDatabase(pools, shard_layout(system.settings))
    try:
        first = await seed_demo(system.settings, seed=SEED, limit=PROGRAMS)

        async def projected() -> bool:
            found = await programs.full_route_program_ids_by_title(db, [c.title for c in wanted])
            rows = [await programs.get_program(db, program_id) for program_id in found.values()]
            return len(rows) == PROGRAMS and all(r is not None and r.status == "on_sale" for r in rows)

        await eventually(projected, PROJECTED_S, "the demo programs")
        again = await seed_demo(system.settings, seed=SEED, limit=PROGRAMS)
        ids = await programs.full_route_program_ids_by_title(db, [c.title for c in wanted])
        statuses = [(await programs.get_program(db, ids[c.title])) for c in wanted]
    finally:
        await pools.stop()

    assert first.programs == PROGRAMS
    assert again.programs == 0
    assert [p.status if p else None for p in statuses] == ["on_sale"] * PROGRAMS
