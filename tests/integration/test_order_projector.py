"""The order projector against real Postgres shards, called in-process.

The program and its seats are projected first from real catalogue events (the program
projector), so the seats an order locks are the rows the catalogue laid out.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest_asyncio

from commands.program import CreateProgram, KnownReferences
from events.envelope import EventEnvelope, derived_event_id
from events.order import (
    HeldTicket,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    OrderPaid,
    OrderRejected,
    RejectionReason,
    SeatsReserved,
)
from events.program import SeatsLaidOut, SeatSpec
from infra.ids.layout import EPOCH_MS, ORDER_NUMBER
from infra.postgres.sharded import ShardedDatabase
from projections.batch import Delivered, Positioned
from projections.order_projector import OrderProjector
from projections.program_projector import ProgramProjector
from queries.views import programs
from queries.views.orders import OrderStatus, load_order, orders_of_user, tickets_of_order
from tests.decided import create_program
from tests.id_sources import CountingIds

NOW = datetime.now(UTC).replace(microsecond=0)
REFERENCES = KnownReferences({110000}, {1: None, 101: 1})
_user_ids = itertools.count(7_400_000_000_000 + uuid.uuid4().int % 1_000_000_000)
_order_ms = itertools.count(int(time.time() * 1000) - EPOCH_MS)
_hold_sequences = itertools.count(1)


@dataclass(frozen=True)
class Venue:
    program_id: int
    show_time_id: int
    laid_out: SeatsLaidOut


def _program() -> CreateProgram:
    return CreateProgram.model_validate(
        {
            "title": "孟京辉 恋爱的犀牛",
            "venue": "蜂巢剧场",
            "areaId": 110000,
            "parentCategoryId": 1,
            "categoryId": 101,
            "seatSelectable": True,
            "showTimes": [
                {
                    "startsAt": (NOW + timedelta(days=20)).isoformat(),
                    "ticketCategories": [{"name": "池座", "price": "380.00", "seatGrid": {"rows": 4, "columns": 5}}],
                }
            ],
        }
    )


@pytest_asyncio.fixture
async def venue(isolated, db, redis, es, area_code) -> Venue:
    """A program with twenty seats, projected into its shard."""
    sharded, _ = db
    events = create_program(_program(), REFERENCES, CountingIds(area_code * 100_000), NOW)
    topic = isolated.kafka.topic("program")
    batch = [
        Positioned(Delivered(topic, 0, i), EventEnvelope.wrap(e, aggregate_version=i + 1)) for i, e in enumerate(events)
    ]
    program = ProgramProjector(
        f"{isolated.worker.projector_group}.program", sharded.pools, sharded.layout, redis, isolated, es
    )
    await program.apply(batch)
    laid_out = next(e for e in events if isinstance(e, SeatsLaidOut))
    return Venue(laid_out.program_id, laid_out.show_time_id, laid_out)


class OrderLog:
    """Hands out offsets on one partition of the order topic; decisions are version 1 with the
    event id the allocator derives, as the allocator appends them."""

    def __init__(self, topic: str):
        self.topic = topic
        self._offsets = itertools.count()

    def batch(self, *events: OrderEvent) -> list[Positioned[EventEnvelope]]:
        return [
            Positioned(
                Delivered(self.topic, 0, next(self._offsets)),
                EventEnvelope.wrap(
                    e,
                    # The decision is an order's first event; its ending (the lifecycle's) its second.
                    aggregate_version=1 if isinstance(e, SeatsReserved | OrderRejected) else 2,
                    event_id=derived_event_id(e.order_number, e.event_type),
                ),
            )
            for e in events
        ]

    def again(self, records: list[Positioned[EventEnvelope]]) -> list[Positioned[EventEnvelope]]:
        """The same envelopes at new offsets: the same decision appended twice."""
        return [Positioned(Delivered(self.topic, 0, next(self._offsets)), r.item) for r in records]


@pytest_asyncio.fixture
async def projected(isolated, db) -> tuple[OrderProjector, ShardedDatabase, OrderLog]:
    sharded, _ = db
    projector = OrderProjector(f"{isolated.worker.projector_group}.order", sharded.pools, sharded.layout)
    return projector, sharded, OrderLog(isolated.kafka.topic("order"))


def _order_number(db: ShardedDatabase, user_id: int) -> int:
    return ORDER_NUMBER.pack(EPOCH_MS + next(_order_ms), 7, 0, db.layout.gene_of_user(user_id))


def _reserved(
    db: ShardedDatabase,
    venue: Venue,
    user_id: int,
    seats: list[SeatSpec],
    requested_at: datetime = NOW,
    hold_sequence: int | None = None,
) -> SeatsReserved:
    tickets = tuple(
        HeldTicket(
            seat_id=s.seat_id,
            ticket_category_id=venue.laid_out.ticket_category_id,
            row=s.row,
            column=s.column,
            price=s.price,
        )
        for s in seats
    )
    return SeatsReserved(
        order_number=_order_number(db, user_id),
        user_id=user_id,
        program_id=venue.program_id,
        show_time_id=venue.show_time_id,
        tickets=tickets,
        total_amount=sum((s.price for s in seats), Decimal(0)),
        pay_deadline=requested_at + timedelta(minutes=15),
        requested_at=requested_at,
        hold_sequence=next(_hold_sequences) if hold_sequence is None else hold_sequence,
    )


def _rejected(db: ShardedDatabase, venue: Venue, user_id: int, requested_at: datetime = NOW) -> OrderRejected:
    return OrderRejected(
        order_number=_order_number(db, user_id),
        user_id=user_id,
        program_id=venue.program_id,
        show_time_id=venue.show_time_id,
        reason=RejectionReason.NO_ADJACENT_SEATS,
        requested_at=requested_at,
    )


async def _seat_states(db: ShardedDatabase, program_id: int) -> dict[int, tuple[str, int | None]]:
    return {s.id: (s.status, s.order_number) for s in await programs.seats_of(db, program_id)}


async def test_reserved_seats_land_in_the_buyers_order_table_with_their_tickets_when_projected(projected, venue):
    projector, db, log = projected
    user_id = next(_user_ids)
    reserved = _reserved(db, venue, user_id, venue.laid_out.seats[:2])

    await projector.apply(log.batch(reserved))

    order = await load_order(db, reserved.order_number)
    assert order is not None and order.status is OrderStatus.UNPAID
    assert (order.user_id, order.ticket_count, order.total_amount) == (user_id, 2, reserved.total_amount)
    assert (order.pay_deadline, order.created_at, order.aggregate_version) == (
        reserved.pay_deadline,
        reserved.requested_at,
        1,
    )
    tickets = await tickets_of_order(db, reserved.order_number)
    assert [(t.ticket_index, t.seat_id, t.row_number, t.column_number, t.price) for t in tickets] == [
        (i, s.seat_id, s.row, s.column, s.price) for i, s in enumerate(venue.laid_out.seats[:2])
    ]
    holding = [
        shard
        for family in ("order", "order_ticket")
        for shard in db.layout.physical_tables(family)
        if await db.fetchval(shard, "SELECT count(*) FROM {table} WHERE order_number = $1", reserved.order_number)
    ]
    assert holding == [db.layout.orders_of_user(user_id), db.layout.order_tickets_of_user(user_id)]


async def test_reserved_seats_are_locked_for_the_order_and_the_others_stay_available(projected, venue):
    projector, db, log = projected
    held = venue.laid_out.seats[:2]
    reserved = _reserved(db, venue, next(_user_ids), held)

    await projector.apply(log.batch(reserved))

    states = await _seat_states(db, venue.program_id)
    assert {states[s.seat_id] for s in held} == {("locked", reserved.order_number)}
    assert {v for k, v in states.items() if k not in {s.seat_id for s in held}} == {("available", None)}


async def test_a_hold_older_than_the_seats_last_one_does_not_take_it(projected, venue):
    projector, db, log = projected
    seat = venue.laid_out.seats[0]
    older = _reserved(db, venue, next(_user_ids), [seat])
    newer = _reserved(db, venue, next(_user_ids), [seat])

    await projector.apply(log.batch(newer, older))

    assert (await _seat_states(db, venue.program_id))[seat.seat_id] == ("locked", newer.order_number)


async def test_a_seat_ends_as_redis_decided_whatever_the_interleaving_of_its_orders_partitions(projected, venue):
    """A holds the seat and is cancelled; B then holds it and pays. A's events and B's are in
    different partitions: every interleaving that keeps each order's own events in order leaves
    the seat sold to B (and a rebuild's replay is one such interleaving)."""
    projector, db, log = projected
    interleavings = [
        order
        for order in itertools.permutations("aAbB")
        if order.index("a") < order.index("A") and order.index("b") < order.index("B")
    ]
    seats = venue.laid_out.seats[10 : 10 + len(interleavings)]
    buyers = {}
    for seat, interleaving in zip(seats, interleavings, strict=True):
        first = _reserved(db, venue, next(_user_ids), [seat])
        then = _reserved(db, venue, next(_user_ids), [seat])

        def ids(o: SeatsReserved) -> dict[str, int]:
            return {"order_number": o.order_number, "user_id": o.user_id, "program_id": venue.program_id}

        paid = OrderPaid.model_validate(ids(then))
        events = {"a": first, "A": OrderCancelled(**ids(first)), "b": then, "B": paid}
        for step in interleaving:
            await projector.apply(log.batch(events[step]))
        buyers[seat.seat_id] = then.order_number

    states = await _seat_states(db, venue.program_id)
    assert len(interleavings) == 6
    assert {seat: states[seat] for seat in buyers} == {seat: ("sold", order) for seat, order in buyers.items()}


async def test_a_rejected_order_lands_with_its_reason_and_no_tickets(projected, venue):
    projector, db, log = projected
    user_id = next(_user_ids)
    rejected = _rejected(db, venue, user_id)

    await projector.apply(log.batch(rejected))

    order = await load_order(db, rejected.order_number)
    assert order is not None and order.status is OrderStatus.REJECTED
    assert (order.reject_reason, order.ticket_count, order.total_amount, order.pay_deadline) == (
        "NO_ADJACENT_SEATS",
        0,
        Decimal(0),
        None,
    )
    assert await tickets_of_order(db, rejected.order_number) == []
    assert set((await _seat_states(db, venue.program_id)).values()) == {("available", None)}


async def test_a_redelivered_batch_and_a_decision_appended_twice_change_nothing(projected, venue):
    projector, db, log = projected
    reserved = _reserved(db, venue, next(_user_ids), venue.laid_out.seats[3:5])
    rejected = _rejected(db, venue, next(_user_ids))
    batch = log.batch(reserved, rejected)
    await projector.apply(batch)

    async def snapshot() -> tuple[object, ...]:
        return (
            await load_order(db, reserved.order_number),
            await tickets_of_order(db, reserved.order_number),
            await load_order(db, rejected.order_number),
            await programs.seats_of(db, venue.program_id),
        )

    before = await snapshot()

    await projector.apply(batch)  # redelivery: skipped by the offsets
    await projector.apply(log.again(batch))  # appended twice: the rows are there already

    assert await snapshot() == before


async def test_a_users_orders_page_newest_first_and_count_them_all(projected, venue):
    projector, db, log = projected
    user_id = next(_user_ids)
    seats = venue.laid_out.seats
    decisions = [
        _reserved(db, venue, user_id, [seats[0]], NOW),
        _rejected(db, venue, user_id, NOW + timedelta(minutes=1)),
        _reserved(db, venue, user_id, [seats[1]], NOW + timedelta(minutes=2)),
    ]
    await projector.apply(log.batch(*decisions, _reserved(db, venue, next(_user_ids), [seats[2]])))

    first, total = await orders_of_user(db, user_id, status=None, page=1, size=2)
    second, _ = await orders_of_user(db, user_id, status=None, page=2, size=2)

    newest_first = [d.order_number for d in reversed(decisions)]
    assert total == 3
    assert [o.order_number for o in first + second] == newest_first


async def test_a_users_orders_filtered_by_status_count_only_that_status(projected, venue):
    projector, db, log = projected
    user_id = next(_user_ids)
    rejected = _rejected(db, venue, user_id, NOW + timedelta(minutes=1))
    await projector.apply(log.batch(_reserved(db, venue, user_id, [venue.laid_out.seats[0]]), rejected))

    found, total = await orders_of_user(db, user_id, status=OrderStatus.REJECTED, page=1, size=10)

    assert (total, [o.order_number for o in found]) == (1, [rejected.order_number])


async def test_a_users_orders_are_read_from_their_gene_table_alone(projected, venue, db):
    projector, sharded, log = projected
    _, queries = db
    user_id = next(_user_ids)
    await projector.apply(log.batch(_rejected(sharded, venue, user_id)))
    queries.clear()

    await orders_of_user(sharded, user_id, status=None, page=1, size=10)

    shard = sharded.layout.orders_of_user(user_id)
    assert {(database, query.split("FROM ")[1].split()[0]) for database, query in queries} == {
        (shard.database, shard.table)
    }


async def test_a_decision_appended_again_after_its_seats_were_released_does_not_lock_them(projected, venue):
    projector, db, log = projected
    seat = venue.laid_out.seats[0]
    reserved = _reserved(db, venue, next(_user_ids), [seat])
    batch = log.batch(reserved)
    await projector.apply(batch)
    # A release as the lifecycle's hooks leave a seat: available, its last holder kept.
    shard = db.layout.program_family("seat", venue.program_id)
    await db.fetch(shard, "UPDATE {table} SET status = 'available' WHERE id = $1", seat.seat_id)

    await projector.apply(log.again(batch))

    assert (await _seat_states(db, venue.program_id))[seat.seat_id] == ("available", reserved.order_number)


async def test_general_admission_tickets_land_without_seats_and_lock_none(projected, venue):
    projector, db, log = projected
    ticket = HeldTicket(ticket_category_id=venue.laid_out.ticket_category_id, price=Decimal("380.00"))
    held = _reserved(db, venue, next(_user_ids), [venue.laid_out.seats[0]])
    reserved = SeatsReserved.model_validate(
        {**held.model_dump(), "tickets": (ticket, ticket), "total_amount": Decimal("760.00")}
    )

    await projector.apply(log.batch(reserved))

    tickets = await tickets_of_order(db, reserved.order_number)
    assert [(t.ticket_index, t.seat_id, t.row_number, t.column_number) for t in tickets] == [
        (0, None, None, None),
        (1, None, None, None),
    ]
    assert set((await _seat_states(db, venue.program_id)).values()) == {("available", None)}


async def test_a_cancelled_or_expired_order_closes_and_its_seats_are_available_again(projected, venue):
    projector, db, log = projected
    cancelled = _reserved(db, venue, next(_user_ids), venue.laid_out.seats[:2])
    expired = _reserved(db, venue, next(_user_ids), venue.laid_out.seats[2:3])
    await projector.apply(log.batch(cancelled, expired))

    await projector.apply(
        log.batch(
            OrderCancelled(order_number=cancelled.order_number, user_id=cancelled.user_id, program_id=venue.program_id),
            OrderExpired(order_number=expired.order_number, user_id=expired.user_id, program_id=venue.program_id),
        )
    )

    assert [
        (o.status)
        for o in [await load_order(db, cancelled.order_number), await load_order(db, expired.order_number)]
        if o
    ] == [
        "cancelled",
        "expired",
    ]
    states = await _seat_states(db, venue.program_id)
    assert {states[s.seat_id][0] for s in venue.laid_out.seats[:3]} == {"available"}


async def test_a_paid_order_sells_its_seats_and_a_later_ending_changes_nothing(projected, venue):
    projector, db, log = projected
    reserved = _reserved(db, venue, next(_user_ids), venue.laid_out.seats[:2])
    await projector.apply(log.batch(reserved))
    ids = {"order_number": reserved.order_number, "user_id": reserved.user_id, "program_id": venue.program_id}

    await projector.apply(log.batch(OrderPaid(**ids)))
    await projector.apply(log.batch(OrderExpired(**ids)))

    order = await load_order(db, reserved.order_number)
    assert order is not None and order.status == "paid" and order.paid_at is not None
    states = await _seat_states(db, venue.program_id)
    assert {states[s.seat_id] for s in venue.laid_out.seats[:2]} == {("sold", reserved.order_number)}
