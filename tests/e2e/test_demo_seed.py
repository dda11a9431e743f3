"""`damai seed demo` publishes the reference data through the commands, once."""

from __future__ import annotations

from infra.demo.areas import DEMO_AREAS
from infra.demo.categories import DEMO_CATEGORIES
from infra.demo.seed import Seeded, seed_demo
from tests.e2e.conftest import System
from tests.processes import eventually

PROJECTED_S = 60


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
