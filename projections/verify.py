"""Does each program's Redis seat inventory agree with its layout in Postgres?

The purchase path reserves from Redis, so a seat missing there can never be sold and a seat
there that Postgres does not know could be sold twice over. What must hold for every ticket
category of a program whose inventory has been projected:

- the seat facts name exactly the category's seats in Postgres, each at its row and column;
- every available seat is one of them;
- where seats are chosen, the remaining count equals the available seats (a reservation takes
  both together); otherwise it lies between 0 and the category's total;
- the price is the category's price in Postgres.

A value the inventory should never hold (a count that is not a whole number, a seat fact that is
not ``row:column``) is reported like any other disagreement, never a traceback.

Run by ``damai verify inventory`` (all programs: a full route, an operator's tool) and usable
for one program.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from redis.asyncio import Redis

from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import available_seats, remaining_counts, seat_facts, seat_position, ticket_category_prices
from queries.views import programs


@dataclass(frozen=True)
class Disagreement:
    program_id: int
    ticket_category_id: int
    what: str

    def __str__(self) -> str:
        return f"program {self.program_id} ticket category {self.ticket_category_id}: {self.what}"


async def verify_program_inventory(db: ShardedDatabase, redis: Redis, program_id: int) -> list[Disagreement]:
    """Every way the program's Redis inventory disagrees with Postgres; empty when it agrees."""
    program = await programs.get_program(db, program_id)
    if program is None:
        return []
    categories = await programs.ticket_categories_of(db, program_id)
    seats = await programs.seats_of(db, program_id) if program.seat_selectable else []
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(remaining_counts(program_id))
        pipe.hgetall(ticket_category_prices(program_id))
        for c in categories:
            pipe.hgetall(seat_facts(program_id, c.id))
            pipe.zrange(available_seats(program_id, c.id), 0, -1)
        remaining_raw, prices_raw, *per_category = await pipe.execute()
    found: list[Disagreement] = []
    for index, c in enumerate(categories):
        facts, available = per_category[2 * index], per_category[2 * index + 1]

        def differs(what: str, category_id: int = c.id) -> None:
            found.append(Disagreement(program_id, category_id, what))

        field = str(c.id).encode()
        if field not in remaining_raw:
            differs("no remaining count in Redis (inventory not projected)")
            continue
        if _price(prices_raw.get(field)) != c.price:
            differs(f"price {_text(prices_raw.get(field))} in Redis, {c.price} in Postgres")
        expected = {s.id: (s.row_number, s.column_number) for s in seats if s.ticket_category_id == c.id}
        held, unreadable = _seat_facts(facts)
        if unreadable:
            differs(f"{len(unreadable)} seat facts in Redis not of a seat id and row:column, e.g. {unreadable[0]}")
        if missing := expected.keys() - held.keys():
            differs(f"{len(missing)} seats of Postgres missing in Redis, e.g. {min(missing)}")
        if unknown := held.keys() - expected.keys():
            differs(f"{len(unknown)} seats in Redis unknown to Postgres, e.g. {min(unknown)}")
        if moved := [s for s in expected.keys() & held.keys() if expected[s] != held[s]]:
            differs(f"{len(moved)} seats at another row or column in Redis, e.g. {min(moved)}")
        if stray := [s for s in available if _whole(s) not in held]:
            differs(f"{len(stray)} available seats without seat facts, e.g. {_lowest(stray)}")
        count = _whole(remaining_raw[field])
        if count is None:
            differs(f"remaining count {_text(remaining_raw[field])} in Redis is not a whole number")
            continue
        if program.seat_selectable and count != len(available):
            differs(f"remaining count {count} but {len(available)} seats available")
        if not 0 <= count <= c.total:
            differs(f"remaining count {count} outside 0..{c.total}")
    return found


def _text(raw: bytes | None) -> str:
    return "None" if raw is None else raw.decode(errors="backslashreplace")


def _whole(raw: bytes) -> int | None:
    """A count or an id as the inventory writes it; None for anything else."""
    text = _text(raw)
    return int(text) if text.removeprefix("-").isascii() and text.removeprefix("-").isdigit() else None


def _lowest(ids: list[bytes]) -> str:
    """The lowest of some seat ids, in numeric order where they are numbers."""
    return min((_text(i) for i in ids), key=lambda text: (len(text), text))


def _price(raw: bytes | None) -> Decimal | None:
    """A price as the inventory writes it ("1880.00"); None for no price or anything else."""
    try:
        price = Decimal(_text(raw))
    except InvalidOperation:
        return None
    return price if price.is_finite() else None


def _seat_facts(facts: dict[bytes, bytes]) -> tuple[dict[int, tuple[int, int]], list[str]]:
    """The readable seat facts (seat id → row and column), and each unreadable one as text."""
    held: dict[int, tuple[int, int]] = {}
    unreadable: list[str] = []
    for seat, fact in facts.items():
        seat_id = _whole(seat)
        try:
            position = seat_position(fact)
        except ValueError:
            position = None
        if seat_id is None or position is None:
            unreadable.append(f"{_text(seat)} -> {_text(fact)}")
        else:
            held[seat_id] = position
    return held, unreadable


async def verify_all_inventories(db: ShardedDatabase, redis: Redis) -> AsyncIterator[tuple[int, list[Disagreement]]]:
    """FULL ROUTE: every program, with what its inventory gets wrong (an operator's tool)."""
    async for program_ids in programs.full_route_program_ids(db):
        for program_id in program_ids:
            yield program_id, await verify_program_inventory(db, redis, program_id)
