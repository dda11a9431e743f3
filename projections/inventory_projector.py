"""Projects ticket categories and seat layouts into Redis: the inventory the purchase path reserves from.

Per program, under its hash tag: remaining counts, prices, show times and the lowest and highest
columns per ticket category, each seat's category, and per ticket category the available seats (a
sorted set scored by row and column, so a row's free seats are one range) and each seat's row and
column. Each event is applied at most once
(``lua/inventory_apply.lua`` remembers event ids), so a replay never resells a seat.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from events.envelope import EventEnvelope
from events.program import SeatsLaidOut, TicketCategoryAdded, TicketCategoryRepriced
from events.serialization import payload_of
from infra.redis import LuaScripts
from infra.redis_keys import (
    SEAT_ROW_STRIDE,
    available_seats,
    category_columns,
    category_show_times,
    inventory_applied,
    projector_offsets,
    remaining_counts,
    seat_categories,
    seat_facts,
    ticket_category_price_versions,
    ticket_category_prices,
)
from projections.batch import Delivered, Gap, report_gap, spans
from projections.projector import Batch

INVENTORY_TYPES = {TicketCategoryAdded.event_type, SeatsLaidOut.event_type, TicketCategoryRepriced.event_type}


class InventoryProjector:
    def __init__(self, name: str, redis: Redis, scripts: LuaScripts):
        self.name = name
        self._redis = redis
        self._apply = scripts["inventory_apply"]
        self._advance = scripts["offsets_advance"]

    async def skip(self, positions: Sequence[Delivered]) -> None:
        if positions:
            self._report_gaps(await self._advance(keys=[projector_offsets(self.name)], args=advance_args(positions)))

    async def applied(self) -> dict[tuple[str, int], int]:
        raw = await self._redis.hgetall(projector_offsets(self.name))
        return {_tp(_text(field)): int(offset) for field, offset in raw.items()}

    async def apply(self, batch: Batch) -> None:
        """One pipeline per batch: a round trip for the lot, each script atomic on its own. The
        offsets it reached are recorded after the events (the events are idempotent by id), for
        the rewind after an assignment (ADR 0003)."""
        if not batch:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for record in batch:
                if record.item.type in INVENTORY_TYPES:
                    keys, args = _script_call(record.item)
                    await self._apply(keys=keys, args=args, client=pipe)
            await self._advance(
                keys=[projector_offsets(self.name)], args=advance_args([r.position for r in batch]), client=pipe
            )
            *_, gaps = await pipe.execute()
        self._report_gaps(gaps)

    def _report_gaps(self, reply: Sequence[Any]) -> None:
        for gap in gaps_of(reply):
            report_gap(self.name, gap)


def advance_args(positions: Sequence[Delivered]) -> list[str | int]:
    """``lua/offsets_advance.lua``'s ARGV: per partition, its field, and the lowest and highest
    offsets among ``positions``."""
    return [
        x for (topic, partition), s in spans(positions).items() for x in (f"{topic}:{partition}", s.lowest, s.highest)
    ]


def gaps_of(reply: Sequence[Any]) -> list[Gap]:
    """The gaps in ``lua/offsets_advance.lua``'s reply: field, last applied, lowest seen, for each."""
    return [
        Gap(*_tp(_text(field)), int(last_applied), int(next_seen))
        for field, last_applied, next_seen in zip(reply[::3], reply[1::3], reply[2::3], strict=True)
    ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _tp(field: str) -> tuple[str, int]:
    topic, partition = field.rsplit(":", 1)
    return topic, int(partition)


def _script_call(envelope: EventEnvelope) -> tuple[list[str], list[str | int]]:
    event = payload_of(envelope)
    assert isinstance(event, TicketCategoryAdded | SeatsLaidOut | TicketCategoryRepriced)
    p, tc = event.program_id, event.ticket_category_id
    keys = [
        inventory_applied(p),
        remaining_counts(p),
        ticket_category_prices(p),
        available_seats(p, tc),
        seat_facts(p, tc),
        ticket_category_price_versions(p),
        seat_categories(p),
        category_show_times(p),
        category_columns(p),
    ]
    head: list[str | int] = [str(envelope.event_id)]
    match event:
        case TicketCategoryAdded():
            price = f"{event.price:.2f}"
            return keys, [*head, "category", tc, event.total, price, envelope.aggregate_version, event.show_time_id]
        case TicketCategoryRepriced():
            return keys, [*head, "price", tc, f"{event.price:.2f}", envelope.aggregate_version]
    seats: list[str | int] = []
    for s in event.seats:
        seats += [s.seat_id, s.row, s.column]
    return keys, [*head, "seats", tc, SEAT_ROW_STRIDE, *seats]
