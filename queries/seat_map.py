"""The seat map of one show time: every seat with its state, grouped by price; and the same split
in two for stadiums, a layout (which seats, where, at what price; cached by clients under its
version) and the live states (one bit per seat of the layout's order).

States come from the Redis seat inventory (the purchase path's own structures), so the map is
as live as the allocator: a seat is ``available`` while it is in its category's available set,
and ``unavailable`` (locked or sold) otherwise.
"""

from __future__ import annotations

import hashlib
import math
from base64 import b64encode, urlsafe_b64encode
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

import orjson
from redis.asyncio import Redis

from infra.metrics import CACHE_HITS, CACHE_MISSES
from infra.redis_keys import available_seats, seat_facts, seat_position
from queries.cache.local import LocalCache
from queries.cache.micro import MicroCache
from queries.cache.single_flight import SingleFlight
from queries.detail import ShowTimeDetail, TicketCategoryDetail
from queries.shapes import PublicShape

AVAILABLE, UNAVAILABLE = "available", "unavailable"
# 128 bits of SHA-256: a layout version no two layouts share by accident, 22 characters in an ETag.
LAYOUT_VERSION_BYTES = 16
LayoutSignature = tuple[tuple[int, str, Decimal, int], ...]


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


class SeatLayoutCategoryOut(PublicShape):
    id: str
    name: str
    price: str
    """Yuan, a decimal string with two places."""
    seat_ids: list[str]
    rows: list[int]
    columns: list[int]
    """Parallel arrays: seat ``i`` of the category is ``seatIds[i]`` at ``rows[i]``, ``columns[i]``; seats
    in row, then column order (the order the bits of ``SeatStatesOut`` follow)."""


class SeatLayoutOut(PublicShape):
    """The body of ``GET .../show-times/{id}/seat-layout``, as ``SeatLayout.document`` holds it."""

    program_id: str
    show_time_id: str
    layout_version: str
    """The layout's ETag without its quotes: a hash of this body's other fields."""
    ticket_categories: list[SeatLayoutCategoryOut]


class SeatStatesCategoryOut(PublicShape):
    ticket_category_id: str
    available: int
    bitset: str
    """Base64 of one bit per seat of the layout's order, most significant bit first: 1 = available."""


class SeatStatesOut(PublicShape):
    """The body of ``GET .../show-times/{id}/seat-states``, as ``encode_seat_states`` builds it."""

    program_id: str
    show_time_id: str
    layout_version: str
    """The ``layoutVersion`` of the layout whose order the bits follow."""
    ticket_categories: list[SeatStatesCategoryOut]


@dataclass(frozen=True)
class CategoryLayout:
    ticket_category_id: int
    seat_ids: tuple[bytes, ...]
    """In the layout's order, as Redis spells them (what ZRANGE answers)."""
    position: dict[bytes, int]
    """Seat id → its index in ``seat_ids``: the bit that says whether it is available."""


@dataclass(frozen=True)
class SeatLayout:
    version: str
    document: bytes
    categories: tuple[CategoryLayout, ...]
    complete: bool
    """Whether every category holds as many seats as its total: the inventory may still be projecting."""

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def layout_signature(show: ShowTimeDetail) -> LayoutSignature:
    """What a layout is built from besides the seats, which never change once laid out: a reprice or a
    renamed category gives another signature, hence another layout (remaining counts are not part)."""
    return tuple((c.id, c.name, c.price, c.total) for c in show.ticket_categories)


async def load_seat_layout(redis: Redis, program_id: int, show: ShowTimeDetail) -> SeatLayout:
    """The layout of one show time from the seat facts of its categories in the Redis inventory."""
    async with redis.pipeline(transaction=False) as pipe:
        for category in show.ticket_categories:
            pipe.hgetall(seat_facts(program_id, category.id))
        replies: list[dict[bytes, bytes]] = await pipe.execute()
    documents, layouts = [], []
    for category, facts in zip(show.ticket_categories, replies, strict=True):
        seats = sorted((*seat_position(fact), int(seat_id), seat_id) for seat_id, fact in facts.items())
        seat_ids = tuple(seat[3] for seat in seats)
        layouts.append(CategoryLayout(category.id, seat_ids, {s: i for i, s in enumerate(seat_ids)}))
        documents.append(
            {
                "id": str(category.id),
                "name": category.name,
                "price": f"{category.price:.2f}",
                "seatIds": [str(seat[2]) for seat in seats],
                "rows": [seat[0] for seat in seats],
                "columns": [seat[1] for seat in seats],
            }
        )
    body = {"programId": str(program_id), "showTimeId": str(show.id), "ticketCategories": documents}
    version = urlsafe_b64encode(hashlib.sha256(orjson.dumps(body)).digest()[:LAYOUT_VERSION_BYTES]).decode()
    complete = all(len(c.seat_ids) == d.total for c, d in zip(layouts, show.ticket_categories, strict=True))
    return SeatLayout(version, orjson.dumps(body | {"layoutVersion": version}), tuple(layouts), complete)


async def read_seat_states(redis: Redis, program_id: int, layout: SeatLayout) -> list[list[bytes]]:
    """The available seat ids of each category of ``layout``, in its order."""
    async with redis.pipeline(transaction=False) as pipe:
        for category in layout.categories:
            pipe.zrange(available_seats(program_id, category.ticket_category_id), 0, -1)
        replies: list[list[bytes]] = await pipe.execute()
    return replies


def encode_seat_states(
    program_id: int, show_time_id: int, layout: SeatLayout, available: Sequence[Sequence[bytes]]
) -> bytes:
    """The JSON of ``GET .../seat-states``: per category, a bit per seat of the layout, set when available.
    A seat the layout does not know (laid out after it was built) has no bit."""
    categories = []
    for category, seat_ids in zip(layout.categories, available, strict=True):
        bits = bytearray((len(category.seat_ids) + 7) // 8)
        count = 0
        for seat_id in seat_ids:
            index = category.position.get(seat_id)
            if index is not None:
                bits[index >> 3] |= 0x80 >> (index & 7)
                count += 1
        categories.append(
            {
                "ticketCategoryId": str(category.ticket_category_id),
                "available": count,
                "bitset": b64encode(bits).decode(),
            }
        )
    return orjson.dumps(
        {
            "programId": str(program_id),
            "showTimeId": str(show_time_id),
            "layoutVersion": layout.version,
            "ticketCategories": categories,
        }
    )


class SeatLayouts:
    """Each show time's layout, kept in this process for as long as its program's categories stay the
    same (a reprice gives another signature, which replaces the kept layout; seats never move), and
    its live states, built at most once per ``states_ttl_s`` and shared by everyone asking meanwhile."""

    def __init__(self, redis: Redis, max_entries: int, states_ttl_s: float):
        self._redis = redis
        self._layouts: LocalCache[tuple[int, int], tuple[LayoutSignature, SeatLayout]] = LocalCache(max_entries)
        self._flight: SingleFlight[tuple[int, int, LayoutSignature], SeatLayout] = SingleFlight()
        self._states: MicroCache[tuple[int, int, str], bytes] = MicroCache("seat_states", states_ttl_s, max_entries)
        self._hits = CACHE_HITS.labels("seat_layouts", "local", "found")
        self._misses = CACHE_MISSES.labels("seat_layouts", "local")

    async def layout(self, program_id: int, show: ShowTimeDetail) -> SeatLayout:
        signature = layout_signature(show)
        held = self._layouts.get((program_id, show.id))
        if held is not None and held[0] == signature:
            self._hits.inc()
            return held[1]
        self._misses.inc()
        return await self._flight.do((program_id, show.id, signature), lambda: self._load(program_id, show, signature))

    async def states(self, program_id: int, show: ShowTimeDetail) -> bytes:
        layout = await self.layout(program_id, show)

        async def build() -> bytes:
            available = await read_seat_states(self._redis, program_id, layout)
            return encode_seat_states(program_id, show.id, layout, available)

        return await self._states.get((program_id, show.id, layout.version), build)

    async def _load(self, program_id: int, show: ShowTimeDetail, signature: LayoutSignature) -> SeatLayout:
        layout = await load_seat_layout(self._redis, program_id, show)
        if layout.complete:  # an incomplete one answers this request only: the rest is being projected
            self._layouts.put((program_id, show.id), (signature, layout), math.inf)
        return layout
