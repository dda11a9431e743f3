"""The reference projector against real Postgres, called in-process."""

from events.envelope import EventEnvelope
from events.reference import AreaCreated, AreaLevel, CategoryCreated
from infra.postgres.pools import ShardPools
from infra.settings import Settings
from projections.batch import Delivered, Positioned
from projections.reference_projector import ReferenceProjector


def _projector(isolated: Settings, pools: ShardPools) -> ReferenceProjector:
    return ReferenceProjector(f"{isolated.worker.projector_group}.reference", pools)


def _batch(isolated: Settings, *events: tuple[int, AreaCreated]) -> list[Positioned[EventEnvelope]]:
    topic = isolated.kafka.topic("reference")
    return [Positioned(Delivered(topic, 0, offset), EventEnvelope.wrap(e, aggregate_version=1)) for offset, e in events]


async def _rows(pools: ShardPools, area_id: int) -> list[tuple[object, ...]]:
    return [
        tuple(
            await pool.fetchrow(
                "SELECT name, level, parent_id, aggregate_version, updated_at FROM area WHERE id = $1", area_id
            )
            or ()
        )
        for _, pool in pools
    ]


async def test_area_lands_in_every_shard_database(isolated, pools, area_code):
    projector = _projector(isolated, pools)

    await projector.apply(_batch(isolated, (0, AreaCreated(area_id=area_code, name="杭州", level=AreaLevel.CITY))))

    rows = await _rows(pools, area_code)
    assert [r[:4] for r in rows] == [("杭州", "city", None, 1)] * len(pools.databases)


async def test_redelivered_batch_changes_nothing(isolated, pools, area_code):
    projector = _projector(isolated, pools)
    batch = _batch(isolated, (0, AreaCreated(area_id=area_code, name="杭州", level=AreaLevel.CITY)))
    await projector.apply(batch)
    before = await _rows(pools, area_code)

    await projector.apply(batch)
    # Same offset, different content: only a redelivery could look like this, and it is skipped.
    await projector.apply(_batch(isolated, (0, AreaCreated(area_id=area_code, name="改名", level=AreaLevel.CITY))))

    assert await _rows(pools, area_code) == before


async def test_same_version_from_a_new_offset_does_not_overwrite(isolated, pools, area_code):
    projector = _projector(isolated, pools)
    await projector.apply(_batch(isolated, (0, AreaCreated(area_id=area_code, name="杭州", level=AreaLevel.CITY))))

    await projector.apply(_batch(isolated, (1, AreaCreated(area_id=area_code, name="重复", level=AreaLevel.CITY))))

    assert {r[0] for r in await _rows(pools, area_code)} == {"杭州"}


async def test_category_lands_in_every_shard_database_once(isolated, pools):
    projector = _projector(isolated, pools)
    topic = isolated.kafka.topic("reference")
    batch = [
        Positioned(
            Delivered(topic, 1, 0),
            EventEnvelope.wrap(CategoryCreated(category_id=9, name="二次元"), aggregate_version=1),
        ),
        Positioned(
            Delivered(topic, 1, 1),
            EventEnvelope.wrap(CategoryCreated(category_id=901, name="动漫展", parent_id=9), aggregate_version=1),
        ),
    ]

    await projector.apply(batch)
    await projector.apply(batch)

    for _, pool in pools:
        rows = await pool.fetch("SELECT id, name, parent_id, aggregate_version FROM category ORDER BY id")
        assert [tuple(r) for r in rows] == [(9, "二次元", None, 1), (901, "动漫展", 9, 1)]
