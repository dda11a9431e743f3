"""The seat map of one show time: every seat with its state, grouped by price.

States come from the Redis seat inventory (the purchase path's own structures), so the map is
as live as the allocator: a seat is ``available`` while it is in its category's available set,
and ``unavailable`` (locked or sold) otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

import orjson
from redis.asyncio import Redis

from infra.redis_keys import available_seats, seat_facts, seat_position
from queries.detail import TicketCategoryDetail

AVAILABLE, UNAVAILABLE = "available", "unavailable"


class SeatState(NamedTuple):
    """A tuple (row and column first, so seats sort by position natively): a stadium has 50,000."""

    row: int
    column: int
    id: int
    ticket_category_id: int
    state: str


@dataclass(frozen=True)
class PriceGroup:
    price: Decimal
    ticket_category_ids: tuple[int, ...]
    seats: tuple[SeatState, ...]


async def seat_map(redis: Redis, program_id: int, categories: Sequence[TicketCategoryDetail]) -> list[PriceGroup]:
    """The seats of these ticket categories (one show time's), by price (cheapest first), each
    group in row and column order."""
    async with redis.pipeline(transaction=False) as pipe:
        for category in categories:
            pipe.hgetall(seat_facts(program_id, category.id))
            pipe.zrange(available_seats(program_id, category.id), 0, -1)
        replies = await pipe.execute()
    seats_by_price: dict[Decimal, list[SeatState]] = defaultdict(list)
    categories_by_price: dict[Decimal, list[int]] = defaultdict(list)
    for index, category in enumerate(categories):
        facts, available = replies[2 * index], set(replies[2 * index + 1])
        categories_by_price[category.price].append(category.id)
        seats = seats_by_price[category.price]
        for seat_id, fact in facts.items():
            row, column = seat_position(fact)
            state = AVAILABLE if seat_id in available else UNAVAILABLE
            seats.append(SeatState(row, column, int(seat_id), category.id, state))
    return [
        PriceGroup(price, tuple(categories_by_price[price]), tuple(sorted(seats)))
        for price, seats in sorted(seats_by_price.items())
    ]


def encode_seat_map(program_id: int, show_time_id: int, groups: list[PriceGroup]) -> bytes:
    """The JSON of ``GET /api/v1/programs/{id}/seats`` (``queries.shapes.SeatMapOut``), built directly:
    a stadium has 50,000 seats, and a model object per seat costs more than the map itself."""
    category_ids = {i: str(i) for g in groups for i in g.ticket_category_ids}
    return orjson.dumps(
        {
            "programId": str(program_id),
            "showTimeId": str(show_time_id),
            "priceGroups": [
                {
                    "price": f"{g.price:.2f}",
                    "ticketCategoryIds": [category_ids[i] for i in g.ticket_category_ids],
                    "seats": [
                        {
                            "id": str(seat_id),
                            "ticketCategoryId": category_ids[category_id],
                            "row": row,
                            "column": column,
                            "state": state,
                        }
                        for row, column, seat_id, category_id, state in g.seats
                    ],
                }
                for g in groups
            ],
        }
    )
