"""Projects orders into their Postgres shards (order, order tickets: the buyer's gene table), and
their seats' states into the program's seat rows.

Each event's writes are one function, ``when_<event>``; ``_writes`` names which one an event
takes. An order row is created by its decision (version 1) and never again: a duplicated
decision, appended twice with the same event id after an allocator crash, finds the row and
changes nothing. Later events of the order update the row only where its ``aggregate_version`` is
older than theirs.

A seat passes from order to order, and two orders' events are in different partitions, applied
in whatever interleaving the partitions arrive (one lagging, a replay). So each seat row keeps
the ``hold_sequence`` of the hold that last took it (``SeatsReserved.hold_sequence``, the
program's count of holds, taken by the allocator's script): a hold locks a seat only over an
older hold, and an ending (cancelled, expired: available; paid: sold) changes only the seats its
order still holds. A seat's holds follow one another in Redis, each after the last one ended, so
the rows end as Redis decided in any interleaving (``tests/integration/test_order_projector.py``);
and a duplicated ``SeatsReserved`` that reaches the log after its order ended finds its own
sequence on the seat and cannot lock it again. The seat rows must exist when the order is
projected, as they do live (the allocator holds only seats laid out before); a rebuild replays
the program topic before the order topic.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from events.base import DomainEvent
from events.envelope import EventEnvelope
from events.order import OrderCancelled, OrderEvent, OrderExpired, OrderPaid, OrderRejected, SeatsReserved
from events.serialization import payload_of
from infra.postgres.pools import ShardPools
from infra.postgres.routing import ShardLayout
from projections.projector import Batch, OffsetsInEveryShard, RowWrite, apply_row_writes
from queries.views.orders import OrderStatus


class SeatStatus(StrEnum):
    """A seat row's ``status`` (migration 0008's CHECK is its twin); only orders change it."""

    AVAILABLE = "available"
    LOCKED = "locked"
    SOLD = "sold"


NOTHING_HELD = 0
"""The ticket count and amount of a rejected order."""

INSERT_ORDER = """
INSERT INTO {table} (order_number, user_id, program_id, show_time_id, ticket_count, total_amount, status,
    reject_reason, pay_deadline, aggregate_version, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (order_number) DO NOTHING
"""
INSERT_TICKET = """
INSERT INTO {table} (order_number, ticket_index, user_id, ticket_buyer_id, ticket_category_id, seat_id, row_number,
    column_number, price, aggregate_version, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (order_number, ticket_index) DO NOTHING
"""
LOCK_SEATS = f"""
UPDATE {{table}} SET status = '{SeatStatus.LOCKED}', order_number = $3, hold_sequence = $4, updated_at = now()
WHERE program_id = $1 AND id = ANY($2::bigint[]) AND hold_sequence < $4
"""


END_ORDER = """
UPDATE {table} SET status = $2, closed_at = $3, aggregate_version = $4, updated_at = now()
WHERE order_number = $1 AND aggregate_version < $4
"""
PAY_ORDER = """
UPDATE {table} SET status = $2, paid_at = $3, aggregate_version = $4, updated_at = now()
WHERE order_number = $1 AND aggregate_version < $4
"""
# An ending changes the seats its order still holds; a released seat keeps its last holder's
# order number and hold sequence (see the module's docstring).
RELEASE_SEATS = f"""
UPDATE {{table}} SET status = '{SeatStatus.AVAILABLE}', updated_at = now()
WHERE program_id = $1 AND order_number = $2 AND status = '{SeatStatus.LOCKED}'
"""
SELL_SEATS = f"""
UPDATE {{table}} SET status = '{SeatStatus.SOLD}', updated_at = now()
WHERE program_id = $1 AND order_number = $2 AND status = '{SeatStatus.LOCKED}'
"""


def when_seats_reserved(layout: ShardLayout, env: EventEnvelope, e: SeatsReserved) -> list[RowWrite]:
    """An unpaid order with its tickets, and its seats locked in the program's shard."""
    n, v = e.order_number, env.aggregate_version
    order = (n, e.user_id, e.program_id, e.show_time_id, len(e.tickets), e.total_amount, OrderStatus.UNPAID.value)
    writes = [RowWrite(layout.order(n), INSERT_ORDER, (*order, None, e.pay_deadline, v, e.requested_at))]
    tickets = layout.order_tickets(n)
    for index, t in enumerate(e.tickets):
        held = (t.ticket_category_id, t.seat_id, t.row, t.column, t.price)
        writes.append(
            RowWrite(tickets, INSERT_TICKET, (n, index, e.user_id, t.ticket_buyer_id, *held, v, e.requested_at))
        )
    # General-admission tickets hold no seat.
    seat_ids = [t.seat_id for t in e.tickets if t.seat_id is not None]
    if seat_ids:
        seats = layout.program_family("seat", e.program_id)
        writes.append(RowWrite(seats, LOCK_SEATS, (e.program_id, seat_ids, n, e.hold_sequence)))
    return writes


def when_order_rejected(layout: ShardLayout, env: EventEnvelope, e: OrderRejected) -> list[RowWrite]:
    """A rejected order with its reason; it holds nothing."""
    n, nothing = e.order_number, Decimal(NOTHING_HELD)
    order = (n, e.user_id, e.program_id, e.show_time_id, NOTHING_HELD, nothing, OrderStatus.REJECTED.value)
    args = (*order, e.reason.value, None, env.aggregate_version, e.requested_at)
    return [RowWrite(layout.order(n), INSERT_ORDER, args)]


def when_order_ended(layout: ShardLayout, env: EventEnvelope, e: OrderCancelled | OrderExpired) -> list[RowWrite]:
    """Cancelled or expired: the order closed, its seats available again."""
    status = OrderStatus.CANCELLED if isinstance(e, OrderCancelled) else OrderStatus.EXPIRED
    n = e.order_number
    return [
        RowWrite(layout.order(n), END_ORDER, (n, status.value, env.occurred_at, env.aggregate_version)),
        RowWrite(layout.program_family("seat", e.program_id), RELEASE_SEATS, (e.program_id, n)),
    ]


def when_order_paid(layout: ShardLayout, env: EventEnvelope, e: OrderPaid) -> list[RowWrite]:
    """Paid: the order's seats are sold."""
    n = e.order_number
    return [
        RowWrite(layout.order(n), PAY_ORDER, (n, OrderStatus.PAID.value, env.occurred_at, env.aggregate_version)),
        RowWrite(layout.program_family("seat", e.program_id), SELL_SEATS, (e.program_id, n)),
    ]


def _writes(layout: ShardLayout, env: EventEnvelope, e: OrderEvent) -> list[RowWrite]:
    """The row writes one event makes, in the order they apply."""
    match e:
        case SeatsReserved():
            return when_seats_reserved(layout, env, e)
        case OrderRejected():
            return when_order_rejected(layout, env, e)
        case OrderCancelled() | OrderExpired():
            return when_order_ended(layout, env, e)
        case OrderPaid():
            return when_order_paid(layout, env, e)
    # Intents (CancelRequested), payments and refunds to come change no row here.
    return []


class OrderProjector(OffsetsInEveryShard):
    """Each database applies the batch's rows it holds (orders and tickets of its order tables,
    seats of its program tables) in one transaction, with its offsets."""

    def __init__(self, name: str, pools: ShardPools, layout: ShardLayout):
        self.name = name
        self._pools = pools
        self._layout = layout

    async def apply(self, batch: Batch) -> None:
        # Each payload is validated once, here, whatever the number of databases.
        typed = {r.position: (r.item, e) for r in batch if (e := _order_event(r.item)) is not None}
        await apply_row_writes(self.name, self._pools, batch, typed, lambda t: _writes(self._layout, *t))


def _order_event(envelope: EventEnvelope) -> OrderEvent | None:
    event: DomainEvent = payload_of(envelope)
    return event if isinstance(event, OrderEvent) else None
