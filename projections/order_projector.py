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

Refunds (issue 12). A ``RefundRequired`` names the payment that goes back. When it is the payment
that paid the order (the order row keeps it from ``OrderPaid``), the buyer asked for the paid
order's refund: the order is refunded at once and its sold seats are available again, as a cancel
releases locked ones. Any other payment (one after a cancel or an expiry, a second one of a paid
order) leaves the order and its seats as they are, until ``OrderRefunded`` says the money is back:
then a cancelled or expired order reads refunded. The event alone does not say which case it is,
and the seat rows sit in the program's shard, apart from the order row, so the batch's payments
are read first (``_paid_by``). Either way the refund gets its row in the order's bill table,
``requested`` until the provider answers (``projections/payment_projector.py`` records the
attempts; whichever of the two topics comes first makes the row).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from enum import StrEnum

from events.base import DomainEvent
from events.envelope import EventEnvelope
from events.order import (
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    OrderPaid,
    OrderRefunded,
    OrderRejected,
    RefundRequired,
    SeatsReserved,
)
from events.serialization import payload_of
from infra.postgres.pools import ShardPools
from infra.postgres.routing import ShardLayout
from infra.postgres.sharded import ShardedDatabase
from projections.projector import Batch, OffsetsInEveryShard, RowWrite, apply_row_writes
from queries.views.orders import OrderStatus, RefundReason, RefundStatus, payments_of_orders


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
UPDATE {table} SET status = $2, paid_at = $3, aggregate_version = $4, payment_id = $5, updated_at = now()
WHERE order_number = $1 AND aggregate_version < $4
"""
# Only the refund of the payment that paid the order refunds it (the module's docstring).
REFUND_PAID_ORDER = f"""
UPDATE {{table}} SET status = '{OrderStatus.REFUNDED}', closed_at = $3, aggregate_version = $4, updated_at = now()
WHERE order_number = $1 AND aggregate_version < $4 AND status = '{OrderStatus.PAID}' AND payment_id = $2
"""
# A payment given back after the order ended: the order now reads refunded. A paid order stays
# paid (its own payment's refund refunded it already; another payment's leaves it paid), and a
# rejected order stays rejected (it never held a ticket).
REFUNDED_AFTER_ENDING = f"""
UPDATE {{table}} SET status = '{OrderStatus.REFUNDED}', aggregate_version = $2, updated_at = now()
WHERE order_number = $1 AND aggregate_version < $2
    AND status IN ('{OrderStatus.CANCELLED}', '{OrderStatus.EXPIRED}')
"""
# The refund's row, made by whichever of its events is projected first; the order's event never
# changes what an attempt recorded, only when it was required and why.
REFUND_REQUIRED = f"""
INSERT INTO {{table}} (order_number, trade_no, amount, reason, status, aggregate_version, created_at)
VALUES ($1, $2, $3, $4, '{RefundStatus.REQUESTED}', 0, $5)
ON CONFLICT (order_number, trade_no) DO UPDATE SET
    reason = COALESCE({{table}}.reason, EXCLUDED.reason),
    created_at = LEAST({{table}}.created_at, EXCLUDED.created_at),
    updated_at = now()
"""
REFUND_DONE = f"""
INSERT INTO {{table}} (order_number, trade_no, refund_number, amount, status, refunded_at, aggregate_version,
    created_at)
VALUES ($1, $2, $3, $4, '{RefundStatus.REFUNDED}', $5, 0, $6)
ON CONFLICT (order_number, trade_no) DO UPDATE SET
    status = '{RefundStatus.REFUNDED}',
    refund_number = COALESCE({{table}}.refund_number, EXCLUDED.refund_number),
    refunded_at = COALESCE({{table}}.refunded_at, EXCLUDED.refunded_at),
    retry_at = NULL,
    updated_at = now()
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
# A refunded order's seats: back on sale, keeping their last holder as a release does.
RELEASE_SOLD_SEATS = f"""
UPDATE {{table}} SET status = '{SeatStatus.AVAILABLE}', updated_at = now()
WHERE program_id = $1 AND order_number = $2 AND status = '{SeatStatus.SOLD}'
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
    """Paid: the order's seats are sold, and the order remembers the payment (schema 2) and when
    the provider says it was paid (schema 1: when the order was)."""
    n, paid_at = e.order_number, e.paid_at or env.occurred_at
    order = (n, OrderStatus.PAID.value, paid_at, env.aggregate_version, e.payment_id)
    return [
        RowWrite(layout.order(n), PAY_ORDER, order),
        RowWrite(layout.program_family("seat", e.program_id), SELL_SEATS, (e.program_id, n)),
    ]


def when_refund_required(
    layout: ShardLayout, env: EventEnvelope, e: RefundRequired, refunds_the_order: bool | None
) -> list[RowWrite]:
    """A payment goes back: its refund requested. When it paid the order, the order is refunded
    and its seats are available again (``refunds_the_order`` None: the order is not projected, so
    the payment's reason is not known; the order's writes find no row either way)."""
    n, v = e.order_number, env.aggregate_version
    reason = None
    if refunds_the_order is not None:
        reason = RefundReason.ORDER_REFUNDED if refunds_the_order else RefundReason.PAYMENT_NOT_NEEDED
    refund = (n, e.payment_id, e.amount, reason, env.occurred_at)
    writes = [RowWrite(layout.refund_bill(n), REFUND_REQUIRED, refund)]
    if refunds_the_order:
        writes += [
            RowWrite(layout.order(n), REFUND_PAID_ORDER, (n, e.payment_id, env.occurred_at, v)),
            RowWrite(layout.program_family("seat", e.program_id), RELEASE_SOLD_SEATS, (e.program_id, n)),
        ]
    return writes


def when_order_refunded(layout: ShardLayout, env: EventEnvelope, e: OrderRefunded) -> list[RowWrite]:
    """The provider gave the payment back: the refund refunded, and an order that had ended
    (cancelled, expired) before the payment came reads refunded."""
    n = e.order_number
    refund = (n, e.payment_id, e.refund_number, e.amount, e.refunded_at, env.occurred_at)
    return [
        RowWrite(layout.refund_bill(n), REFUND_DONE, refund),
        RowWrite(layout.order(n), REFUNDED_AFTER_ENDING, (n, env.aggregate_version)),
    ]


def _writes(layout: ShardLayout, env: EventEnvelope, e: OrderEvent, paid_by: dict[int, str | None]) -> list[RowWrite]:
    """The row writes one event makes, in the order they apply. ``paid_by``: the payment that paid
    each order a ``RefundRequired`` of the batch names (absent: the order is not projected)."""
    match e:
        case SeatsReserved():
            return when_seats_reserved(layout, env, e)
        case OrderRejected():
            return when_order_rejected(layout, env, e)
        case OrderCancelled() | OrderExpired():
            return when_order_ended(layout, env, e)
        case OrderPaid():
            return when_order_paid(layout, env, e)
        case RefundRequired():
            refunds_the_order = paid_by[e.order_number] == e.payment_id if e.order_number in paid_by else None
            return when_refund_required(layout, env, e, refunds_the_order)
        case OrderRefunded():
            return when_order_refunded(layout, env, e)
    # Intents (CancelRequested, PaymentConfirmed, RefundRequested, RefundConfirmed) change no row.
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
        paid_by = await self._paid_by(e for _, e in typed.values())
        await apply_row_writes(self.name, self._pools, batch, typed, lambda t: _writes(self._layout, *t, paid_by))

    async def _paid_by(self, events: Iterable[OrderEvent]) -> dict[int, str | None]:
        """The payment that paid each order a ``RefundRequired`` of the batch names: its
        ``OrderPaid`` earlier in the batch, or else its row. Read outside the batch's transactions,
        which is safe: this projector is the one writer of the order rows, and a row's payment,
        once written, never changes (a batch applied again reads the same)."""
        paid_in_batch: dict[int, str | None] = {}
        asked: set[int] = set()
        for e in events:
            if isinstance(e, OrderPaid):
                paid_in_batch[e.order_number] = e.payment_id
            elif isinstance(e, RefundRequired) and e.order_number not in paid_in_batch:
                asked.add(e.order_number)
        if not asked:
            return paid_in_batch
        stored = await payments_of_orders(ShardedDatabase(self._pools, self._layout), asked)
        return stored | paid_in_batch


def _order_event(envelope: EventEnvelope) -> OrderEvent | None:
    event: DomainEvent = payload_of(envelope)
    return event if isinstance(event, OrderEvent) else None
