"""The Redis seat inventory projection, in-process against the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest_asyncio
from prometheus_client import REGISTRY

from events.envelope import EventEnvelope
from events.program import SeatsLaidOut, TicketCategoryAdded, TicketCategoryRepriced
from events.serialization import payload_of
from infra.redis import LuaScripts
from infra.redis_keys import (
    SEAT_ROW_STRIDE,
    available_seats,
    category_columns,
    category_show_times,
    program_tag,
    projector_offsets,
    remaining_counts,
    seat_categories,
    seat_facts,
    ticket_category_prices,
)
from projections.batch import Delivered, Positioned
from projections.inventory_projector import InventoryProjector
from tests.integration.test_program_projector import _events


@pytest_asyncio.fixture
async def layout(redis, area_code) -> AsyncIterator[tuple[int, int, list[Positioned[EventEnvelope]]]]:
    """A program's creation events (a 2,450-seat layout in two categories), and its keys removed after."""
    events = _events(area_code * 100_000)
    program_id = events[0].program_id
    batch = [
        Positioned(Delivered("t", 0, i), EventEnvelope.wrap(e, aggregate_version=i + 1)) for i, e in enumerate(events)
    ]
    first_category = next(e for e in events if isinstance(e, TicketCategoryAdded)).ticket_category_id
    yield program_id, first_category, batch
    keys = [k async for k in redis.scan_iter(match=f"{program_tag(program_id)}*")]
    if keys:
        await redis.delete(*keys)
    await redis.delete(
        *(
            projector_offsets(name)
            for name in (
                "test.inventory",
                "a-rebuilding-projector",
            )
        )
    )


async def test_counts_and_available_seats_match_the_layout(redis, layout):
    program_id, inner, batch = layout

    await InventoryProjector("test.inventory", redis, LuaScripts(redis)).apply(batch)

    remaining = {int(k): int(v) for k, v in (await redis.hgetall(remaining_counts(program_id))).items()}
    assert sorted(remaining.values()) == [50, 2400]
    assert await redis.zcard(available_seats(program_id, inner)) == 2400
    first_row = await redis.zrangebyscore(
        available_seats(program_id, inner), SEAT_ROW_STRIDE + 1, SEAT_ROW_STRIDE + SEAT_ROW_STRIDE - 1
    )
    assert len(first_row) == 60
    seat = first_row[0].decode()
    assert (await redis.hget(seat_facts(program_id, inner), seat)).decode() == "1:1"
    assert (await redis.hget(ticket_category_prices(program_id), str(inner))).decode() == "1355.00"


async def test_each_seat_knows_its_category_and_each_category_its_show_time_and_columns(redis, layout):
    program_id, inner, batch = layout
    added = [e.item.payload for e in batch if e.item.type == TicketCategoryAdded.event_type]
    laid_out = [e.item.payload for e in batch if e.item.type == SeatsLaidOut.event_type]
    inner_chunks = [p for p in laid_out if p["ticketCategoryId"] == inner]

    await InventoryProjector("test.inventory", redis, LuaScripts(redis)).apply(batch)

    show_times = await redis.hgetall(category_show_times(program_id))
    assert {int(k): int(v) for k, v in show_times.items()} == {a["ticketCategoryId"]: a["showTimeId"] for a in added}
    categories = await redis.hgetall(seat_categories(program_id))
    assert len(categories) == 2450
    assert len(inner_chunks) > 1  # the bounds below span several SeatsLaidOut events
    assert {int(categories[str(s["seatId"]).encode()]) for p in inner_chunks for s in p["seats"]} == {inner}
    columns = await redis.hgetall(category_columns(program_id))
    outer = next(a["ticketCategoryId"] for a in added if a["ticketCategoryId"] != inner)
    assert {k.decode(): int(v) for k, v in columns.items()} == {
        f"{inner}:min": 1,
        f"{inner}:max": 60,
        f"{outer}:min": 1,
        f"{outer}:max": 10,
    }


async def test_a_category_s_columns_span_every_chunk_of_its_layout(redis, layout):
    program_id, _, batch = layout
    laid_out = next(e.item for e in batch if e.item.type == SeatsLaidOut.event_type)
    first = payload_of(laid_out)
    assert isinstance(first, SeatsLaidOut)
    spec = first.seats[0]
    chunks = [
        first.model_copy(update={"seats": [spec.model_copy(update={"seat_id": spec.seat_id + c, "column": c})]})
        for c in (7, 3, 9, 5)
    ]

    await InventoryProjector("test.inventory", redis, LuaScripts(redis)).apply(
        [Positioned(Delivered("t", 0, i), EventEnvelope.wrap(c, aggregate_version=i + 1)) for i, c in enumerate(chunks)]
    )

    columns = await redis.hmget(
        category_columns(program_id), *(f"{first.ticket_category_id}:{b}" for b in ("min", "max"))
    )
    assert [int(c) for c in columns] == [3, 9]


def _repriced(batch, inner: int, price: str, version: int) -> Positioned[EventEnvelope]:
    event = TicketCategoryRepriced(
        program_id=batch[0].item.payload["programId"],
        show_time_id=batch[1].item.payload["showTimeId"],
        ticket_category_id=inner,
        price=Decimal(price),
        previous_price=Decimal("1355.00"),
    )
    return Positioned(Delivered("t", 0, version - 1), EventEnvelope.wrap(event, aggregate_version=version))


async def test_a_new_price_applies_once_and_a_replay_never_restores_the_old_one(redis, layout):
    program_id, inner, batch = layout
    projector = InventoryProjector("test.inventory", redis, LuaScripts(redis))
    await projector.apply([*batch, _repriced(batch, inner, "1580.00", len(batch) + 1)])

    await projector.apply(batch)  # the whole log again, from the start

    assert (await redis.hget(ticket_category_prices(program_id), str(inner))).decode() == "1580.00"
    assert await redis.zcard(available_seats(program_id, inner)) == 2400


async def test_of_two_new_prices_appended_out_of_order_the_newer_version_wins(redis, layout):
    program_id, inner, batch = layout
    n = len(batch)
    newer, older = _repriced(batch, inner, "1880.00", n + 2), _repriced(batch, inner, "1580.00", n + 1)

    # Two admins at once: versions n+1 and n+2 reserved in that order, appended the other way round.
    await InventoryProjector("test.inventory", redis, LuaScripts(redis)).apply([*batch, newer, older])

    assert (await redis.hget(ticket_category_prices(program_id), str(inner))).decode() == "1880.00"


async def test_replaying_the_layout_never_resells_a_seat_or_resets_a_count(redis, layout):
    program_id, inner, batch = layout
    projector = InventoryProjector("test.inventory", redis, LuaScripts(redis))
    await projector.apply(batch)
    sold = await redis.zrange(available_seats(program_id, inner), 0, 1)
    await redis.zrem(available_seats(program_id, inner), *sold)
    await redis.hincrby(remaining_counts(program_id), str(inner), -2)

    await projector.apply(batch)
    await InventoryProjector("a-rebuilding-projector", redis, LuaScripts(redis)).apply(batch)

    assert await redis.zcard(available_seats(program_id, inner)) == 2398
    assert int(await redis.hget(remaining_counts(program_id), str(inner))) == 2398
    assert [await redis.zscore(available_seats(program_id, inner), s) for s in sold] == [None, None]


async def test_every_key_of_a_program_shares_its_hash_tag(layout):
    program_id, inner, _ = layout

    keys = [
        remaining_counts(program_id),
        ticket_category_prices(program_id),
        available_seats(program_id, inner),
        seat_facts(program_id, inner),
    ]

    assert all(k.startswith(f"{{p:{program_id}}}") for k in keys)


async def test_a_batch_that_skips_offsets_is_reported_as_a_gap(redis, layout):
    program_id, inner, batch = layout
    projector = InventoryProjector("test.inventory", redis, LuaScripts(redis))

    def gaps() -> float:
        return REGISTRY.get_sample_value("damai_projector_gaps_total", {"projector": "test.inventory"}) or 0.0

    before = gaps()
    await projector.apply(batch)  # from offset 0, the first the projector sees: no gap
    await projector.apply([_repriced(batch, inner, "1580.00", len(batch) + 1)])  # the next offset: no gap
    after_contiguous = gaps()
    await projector.apply([_repriced(batch, inner, "1880.00", len(batch) + 6)])  # four offsets never seen

    assert after_contiguous == before
    assert gaps() == before + 1
    assert (await redis.hget(ticket_category_prices(program_id), str(inner))).decode() == "1880.00"
    assert await projector.applied() == {("t", 0): len(batch) + 5}
