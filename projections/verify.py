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

``verify_program_orders`` (``damai verify orders``) checks the orders against the inventory they
took from: no seat in two live (held or sold) decisions; per ticket category, remaining = layout -
held - sold; per user, the account = the tickets of their live orders; every unavailable seat held
by one live order and none of theirs available; and, for the orders Postgres has caught up with,
their seat rows locked or sold as Redis says. A refunded order (its decision ``refunded``) holds
nothing, as a cancelled one: no seat, no count, no account total, and no seat row locked or sold.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from redis.asyncio import Redis

from infra.postgres.routing import Shard
from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import (
    account_tickets,
    available_seats,
    order_decision,
    remaining_counts,
    seat_facts,
    seat_position,
    ticket_category_prices,
)
from queries.views import programs
from queries.views.orders import OrderStatus


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


# -- orders: Redis decisions, the inventory they took from, and the seat rows in Postgres ---------

LIVE = ("held", "sold")
"""The statuses of a Redis decision that still hold their tickets (lua/order_reserve.lua,
lua/order_release.lua); the other statuses (rejected, cancelled, expired, refunded) hold nothing."""
SEAT_STATUS_OF_LIVE = {"held": "locked", "sold": "sold"}
"""A live order's seat rows' status in Postgres (projections/order_projector.py)."""
ORDER_STATUS_OF_DECISION = {
    "held": "unpaid",
    "sold": "paid",
    "cancelled": "cancelled",
    "expired": "expired",
    "rejected": "rejected",
    "refunded": "refunded",
}
"""The order row's status once the order projector has the decision's latest event. A cancelled or
expired order whose late payment is being given back stays so on both sides until the refund is
confirmed (OrderRefunded); a paid order is refunded on both at once (RefundRequired)."""
SCAN_COUNT = 1000
"""Keys asked for per SCAN step of one program's decisions and accounts."""


@dataclass(frozen=True)
class OrderDifference:
    program_id: int
    what: str

    def __str__(self) -> str:
        return f"program {self.program_id}: {self.what}"


@dataclass(frozen=True)
class OrdersReport:
    """What ``verify_program_orders`` found for one program."""

    program_id: int
    live_orders: int
    """Orders Redis shows held or sold."""
    live_tickets: int
    awaiting_projection: int
    """Orders whose latest decision Postgres does not show yet (not compared with the seat rows)."""
    differences: tuple[OrderDifference, ...]

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        return (
            f"program {self.program_id}: {self.live_orders} live orders, {self.live_tickets} tickets,"
            f" {self.awaiting_projection} awaiting projection, {len(self.differences)} differences"
        )


@dataclass(frozen=True)
class _Decided:
    order_number: int
    user_id: int
    status: str
    seats: tuple[tuple[int, int], ...]
    """(seat id, ticket category) of each seated ticket."""
    tickets_by_category: dict[int, int]

    @property
    def live(self) -> bool:
        return self.status in LIVE


async def verify_program_orders(db: ShardedDatabase, redis: Redis, program_id: int) -> OrdersReport:
    """Every way the program's orders disagree between Redis and Postgres: seats held twice,
    remaining counts and account totals off the live orders, unavailable seats held by no order,
    seat rows whose status is not their order's. Orders Postgres has not caught up with are
    counted, not compared."""
    found: list[str] = []
    decided = await _decisions(redis, program_id, found.append)
    live = [d for d in decided.values() if d.live]
    _seats_held_once(live, found.append)
    program = await programs.get_program(db, program_id)
    categories = await programs.ticket_categories_of(db, program_id)
    seats = await programs.seats_of(db, program_id)
    await _counts_agree(redis, program_id, categories, seats, bool(program and program.seat_selectable), live, found)
    await _accounts_agree(redis, program_id, live, found.append)
    await _availability_agrees(redis, program_id, categories, live, found.append)
    awaiting = await _seat_rows_agree(db, seats, decided, found.append)
    return OrdersReport(
        program_id,
        live_orders=len(live),
        live_tickets=sum(sum(d.tickets_by_category.values()) for d in live),
        awaiting_projection=awaiting,
        differences=tuple(OrderDifference(program_id, what) for what in found),
    )


async def _decisions(redis: Redis, program_id: int, differs: Callable[[str], None]) -> dict[int, _Decided]:
    keys = await _scan(redis, order_decision(program_id, 0)[:-1] + "*")
    decided: dict[int, _Decided] = {}
    for key, raw in zip(keys, await _values(redis, keys), strict=True):
        if raw is None:  # expired since the scan
            continue
        try:
            decision = _decided(json.loads(raw))
        except (ValueError, KeyError, TypeError, IndexError):
            differs(f"unreadable decision {_text(key)}: {_text(raw)[:80]}")
            continue
        decided[decision.order_number] = decision
    return decided


async def _scan(redis: Redis, pattern: str) -> list[bytes]:
    return [k async for k in redis.scan_iter(match=pattern, count=SCAN_COUNT)]


async def _values(redis: Redis, keys: list[bytes]) -> list[bytes | None]:
    """The values of string keys (None for one gone since it was found)."""
    return cast(list[bytes | None], await redis.mget(keys)) if keys else []


def _decided(d: dict[str, Any]) -> _Decided:
    """A decision as lua/order_reserve.lua stores it; tickets are [seat or "", category, ...]."""
    counts: dict[int, int] = {}
    for t in d.get("t", ()):
        counts[int(t[1])] = counts.get(int(t[1]), 0) + 1
    seats = tuple((int(t[0]), int(t[1])) for t in d.get("t", ()) if t[0])
    return _Decided(int(d["o"]), int(d["u"]), str(d["status"]), seats, counts)


def _seats_held_once(live: list[_Decided], differs: Callable[[str], None]) -> None:
    holders: dict[int, list[int]] = {}
    for d in live:
        for seat, _ in d.seats:
            holders.setdefault(seat, []).append(d.order_number)
    for seat, orders in sorted(holders.items()):
        if len(orders) > 1:
            differs(f"seat {seat} in {len(orders)} live orders: {', '.join(map(str, sorted(orders)))}")


async def _counts_agree(
    redis: Redis,
    program_id: int,
    categories: list[programs.TicketCategoryRow],
    seats: list[programs.SeatRow],
    seated: bool,
    live: list[_Decided],
    found: list[str],
) -> None:
    remaining = cast(dict[bytes, bytes], await redis.hgetall(remaining_counts(program_id)))
    for c in categories:
        layout = sum(1 for s in seats if s.ticket_category_id == c.id) if seated else c.total
        held = sum(d.tickets_by_category.get(c.id, 0) for d in live if d.status == "held")
        sold = sum(d.tickets_by_category.get(c.id, 0) for d in live if d.status == "sold")
        raw = remaining.get(str(c.id).encode())
        count = None if raw is None else _whole(raw)
        if count != layout - held - sold:
            found.append(
                f"ticket category {c.id}: remaining {_text(raw)} in Redis,"
                f" layout {layout} - held {held} - sold {sold} = {layout - held - sold}"
            )


async def _accounts_agree(redis: Redis, program_id: int, live: list[_Decided], differs: Callable[[str], None]) -> None:
    expected: dict[int, int] = {}
    for d in live:
        expected[d.user_id] = expected.get(d.user_id, 0) + sum(d.tickets_by_category.values())
    keys = await _scan(redis, account_tickets(program_id, 0)[:-1] + "*")
    held: dict[int, bytes | None] = {}
    for key, raw in zip(keys, await _values(redis, keys), strict=True):
        user = _whole(key.rsplit(b":", 1)[1])
        if user is None:
            differs(f"account key {_text(key)} names no user")
        else:
            held[user] = raw
    for user in sorted(expected.keys() | held.keys()):
        raw = held.get(user)
        total = 0 if raw is None else _whole(raw)
        if total != expected.get(user, 0):
            differs(f"user {user}: account {_text(raw)} in Redis, {expected.get(user, 0)} tickets in live orders")


async def _availability_agrees(
    redis: Redis,
    program_id: int,
    categories: list[programs.TicketCategoryRow],
    live: list[_Decided],
    differs: Callable[[str], None],
) -> None:
    held_seats = {seat: tc for d in live for seat, tc in d.seats}
    async with redis.pipeline(transaction=False) as pipe:
        for c in categories:
            pipe.hkeys(seat_facts(program_id, c.id))
            pipe.zrange(available_seats(program_id, c.id), 0, -1)
        replies = await pipe.execute()
    for index, c in enumerate(categories):
        laid_out = {s for s in map(_whole, replies[2 * index]) if s is not None}
        available = {s for s in map(_whole, replies[2 * index + 1]) if s is not None}
        held_here = {seat for seat, tc in held_seats.items() if tc == c.id}
        if unheld := sorted(laid_out - available - held_here):
            differs(
                f"ticket category {c.id}: {len(unheld)} seats unavailable in Redis but in no live order,"
                f" e.g. {unheld[0]}"
            )
        if offered := sorted(held_here & available):
            differs(f"ticket category {c.id}: {len(offered)} seats of live orders still available, e.g. {offered[0]}")


async def _seat_rows_agree(
    db: ShardedDatabase, seats: list[programs.SeatRow], decided: dict[int, _Decided], differs: Callable[[str], None]
) -> int:
    """Compare the seat rows with the decisions of the orders Postgres has caught up with; return
    how many it has not (a short lag behind Redis is normal: Redis decides, then the log, then
    the projector)."""
    taken: dict[int, list[programs.SeatRow]] = {}
    for s in seats:
        if s.status in SEAT_STATUS_OF_LIVE.values() and s.order_number is not None:
            taken.setdefault(s.order_number, []).append(s)
    statuses = await _order_statuses(db, decided.keys() | taken.keys())
    awaiting = 0
    for order_number in sorted(decided.keys() | taken.keys()):
        d, rows_of_order, status = decided.get(order_number), taken.get(order_number, []), statuses.get(order_number)
        if d is None:
            if status in (OrderStatus.UNPAID, OrderStatus.PAID):
                differs(f"order {order_number} is {status} in Postgres but Redis holds no decision for it")
            continue
        if status != ORDER_STATUS_OF_DECISION.get(d.status):
            awaiting += 1
            continue
        want = {seat: SEAT_STATUS_OF_LIVE[d.status] for seat, _ in d.seats} if d.live else {}
        have = {s.id: s.status for s in rows_of_order}
        if want != have:
            wrong = sorted(want.keys() ^ have.keys() | {s for s in want.keys() & have.keys() if want[s] != have[s]})
            differs(
                f"order {order_number} ({d.status} in Redis): {len(wrong)} seat rows of another status in Postgres,"
                f" e.g. seat {wrong[0]} {have.get(wrong[0], 'not taken')}, expected {want.get(wrong[0], 'not taken')}"
            )
    return awaiting


async def _order_statuses(db: ShardedDatabase, order_numbers: Iterable[int]) -> dict[int, OrderStatus]:
    """Each order's status in its order table (one query per table); absent when not projected."""
    by_table: dict[Shard, list[int]] = {}
    for n in order_numbers:
        by_table.setdefault(db.layout.order(n), []).append(n)
    found: dict[int, OrderStatus] = {}
    for shard, numbers in sorted(by_table.items()):
        sql = "SELECT order_number, status FROM {table} WHERE order_number = ANY($1::bigint[])"
        found |= {r["order_number"]: OrderStatus(r["status"]) for r in await db.fetch(shard, sql, numbers)}
    return found


async def verify_all_orders(db: ShardedDatabase, redis: Redis) -> AsyncIterator[OrdersReport]:
    """FULL ROUTE: every program's orders checked (an operator's tool)."""
    async for program_ids in programs.full_route_program_ids(db):
        for program_id in program_ids:
            yield await verify_program_orders(db, redis, program_id)
