"""The seat map of one show time: every seat with its state, grouped by price.

States come from the Redis seat inventory (the purchase path's own structures), so the map is
as live as the allocator: a seat is ``available`` while it is in its category's available set,
and ``unavailable`` (locked or sold) otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from redis.asyncio import Redis

from infra.catalogue.detail import ProgramDetail, ShowTimeDetail
from infra.redis_keys import available_seats, seat_facts

AVAILABLE, UNAVAILABLE = "available", "unavailable"


@dataclass(frozen=True)
class SeatState:
    id: int
    ticket_category_id: int
    row: int
    column: int
    state: str


@dataclass(frozen=True)
class PriceGroup:
    price: Decimal
    ticket_category_ids: tuple[int, ...]
    seats: tuple[SeatState, ...]


async def seat_map(redis: Redis, program: ProgramDetail, show: ShowTimeDetail) -> list[PriceGroup]:
    """All seats of ``show``, by price (cheapest first), each in row and column order."""
    async with redis.pipeline(transaction=False) as pipe:
        for category in show.ticket_categories:
            pipe.hgetall(seat_facts(program.id, category.id))
            pipe.zrange(available_seats(program.id, category.id), 0, -1)
        replies = await pipe.execute()
    seats_by_price: dict[Decimal, list[SeatState]] = defaultdict(list)
    categories_by_price: dict[Decimal, list[int]] = defaultdict(list)
    for index, category in enumerate(show.ticket_categories):
        facts, available = replies[2 * index], set(replies[2 * index + 1])
        categories_by_price[category.price].append(category.id)
        for seat_id, fact in facts.items():
            # "row:column" (inventories projected before prices moved to their own hash also
            # carry ":price", ignored here: the price is the category's).
            row, column = fact.decode().split(":")[:2]
            state = AVAILABLE if seat_id in available else UNAVAILABLE
            seats_by_price[category.price].append(SeatState(int(seat_id), category.id, int(row), int(column), state))
    return [
        PriceGroup(price, tuple(categories_by_price[price]), tuple(sorted(seats, key=lambda s: (s.row, s.column))))
        for price, seats in sorted(seats_by_price.items())
    ]
