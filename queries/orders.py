"""The read side of the purchase path: what the order checks need of a program (from the detail
cache), and a buyer's view of their orders — one order from Redis while it is fresh (the
allocator's decision, read from the program's slot; waiting on it never reads Postgres), from its
shard after; the list of a buyer's orders from their one order table. Each order shows its
payment and refunds the same two ways (``queries/order_payments.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import Field

from aggregates.errors import NotFound
from aggregates.program import ProgramStatus
from commands.order import OrderableProgram, OrderableShowTime, PlacedOrder
from infra.order_store import RedisDecisions, RedisOrderIndex
from infra.postgres.sharded import ShardedDatabase
from queries.cache import ProgramDetailCache
from queries.detail import ProgramDetail
from queries.order_payments import (
    FreshPayments,
    PaymentOut,
    RefundOut,
    fresh_payment,
    stored_payment,
    stored_refunds,
)
from queries.shapes import PublicShape
from queries.views.orders import (
    OrderRow,
    OrderTicketRow,
    load_order,
    orders_of_user,
    pay_bills_of_orders,
    refunds_of_orders,
    tickets_of_order,
)

FIRST_POLL_S = 0.005
LONGEST_POLL_S = 0.05

# The allocator's decision statuses (lua/order_reserve.lua, lua/order_release.lua) as the buyer sees them.
VIEW_STATUS = {
    "held": "unpaid",
    "rejected": "rejected",
    "sold": "paid",
    "cancelled": "cancelled",
    "expired": "expired",
    "refunded": "refunded",
}
PENDING = "pending"
UNPAID = "unpaid"


class TicketOut(PublicShape):
    seat_id: str | None
    """null, like ``row`` and ``column``, for a general-admission ticket (a category counted by its total)."""
    row: int | None
    column: int | None
    price: str
    ticket_category_id: str
    ticket_buyer_id: str | None = None


class OrderOut(PublicShape):
    order_number: str
    status: str
    """pending, unpaid, rejected, paid, cancelled, expired or refunded"""
    reason: str | None = None
    """Why a rejected order was refused (SOLD_OUT, NO_ADJACENT_SEATS, PRICE_CHANGED, ...)."""
    program_id: str
    show_time_id: str
    tickets: list[TicketOut]
    total_amount: str
    pay_deadline: datetime | None = None
    created_at: datetime
    payment: PaymentOut | None = None
    """The order's pay bill: null until its buyer starts paying."""
    refunds: list[RefundOut] = Field(default_factory=list)
    """Each payment given back, oldest first: the paid order's own when its refund was asked for,
    or one that came after the order was cancelled or expired."""


ORDERABLE_KEPT_MAX = 10_000


class CataloguePrograms:
    """``commands.order.Programs`` over the program detail cache (memory, then Redis, then Postgres)."""

    def __init__(self, details: ProgramDetailCache) -> None:
        self._details = details
        # The last one made of each program, and the detail it was made of: made again only when
        # the cache holds another detail (the hot path asks thousands of times per detail).
        self._made: dict[int, tuple[ProgramDetail, OrderableProgram]] = {}

    async def orderable(self, program_id: int) -> OrderableProgram | None:
        cached = await self._details.get(program_id)
        if cached is None:
            self._made.pop(program_id, None)
            return None
        made = self._made.get(program_id)
        if made is not None and made[0] is cached.detail:
            return made[1]
        orderable = self._orderable(cached.detail)
        if len(self._made) >= ORDERABLE_KEPT_MAX:
            self._made.clear()
        self._made[program_id] = (cached.detail, orderable)
        return orderable

    @staticmethod
    def _orderable(detail: ProgramDetail) -> OrderableProgram:
        return OrderableProgram(
            program_id=detail.id,
            on_sale=detail.status is ProgramStatus.ON_SALE,
            seat_selectable=detail.seat_selectable,
            real_name_required=detail.real_name_required,
            per_order_limit=detail.per_order_limit,
            per_account_limit=detail.per_account_limit,
            payment_minutes=detail.payment_minutes,
            show_times={
                s.id: OrderableShowTime(s.id, s.starts_at, frozenset(c.id for c in s.ticket_categories))
                for s in detail.show_times
            },
        )


class OrderPageOut(PublicShape):
    items: list[OrderOut]
    total: int
    """Orders of the user with this status (or all), over every page."""
    page: int
    size: int


class OrderReads:
    """A buyer's own orders: from Redis while they are fresh (the allocator's decision, at once),
    from the order's shard after (the order projector's rows).

    ``payments`` reads the fresh payment from Redis; without it (a caller that did not wire one)
    the fresh view takes the payment from the bill rows, as the stored view does: a moment later
    (once projected), never wrong."""

    def __init__(
        self,
        decisions: RedisDecisions,
        index: RedisOrderIndex,
        db: ShardedDatabase,
        payments: FreshPayments | None = None,
    ) -> None:
        self._decisions = decisions
        self._index = index
        self._db = db
        self._payments = payments

    async def order(self, user_id: int, order_number: int) -> OrderOut:
        """The order as its buyer sees it; ``ORDER_NOT_FOUND`` for another user's or an unknown one."""
        placed = await self._index.placed(user_id, order_number)
        if placed is not None:
            # The index and the decision live as long (DAMAI_ORDERS__VIEW_TTL_S): no decision yet is pending.
            order = _view(order_number, placed, await self._decisions.decision(placed.program_id, order_number))
            return await self._with_fresh_payment(order, placed.program_id, order_number)
        stored = await load_order(self._db, order_number)
        if stored is None or stored.user_id != user_id:
            raise NotFound(
                f"no order {order_number}", code="ORDER_NOT_FOUND", details={"orderNumber": str(order_number)}
            )
        return (await self._stored_views([stored]))[0]

    async def page(self, user_id: int, status: str | None, page: int, size: int) -> OrderPageOut:
        """The user's orders newest first, from their one order table."""
        found, total = await orders_of_user(self._db, user_id, status=status, page=page, size=size)
        return OrderPageOut(items=await self._stored_views(found), total=total, page=page, size=size)

    async def _stored_views(self, orders: list[OrderRow]) -> list[OrderOut]:
        """The orders from their rows, with their bills (read for all of them at once)."""
        numbers = [o.order_number for o in orders]
        bills = await pay_bills_of_orders(self._db, numbers) if numbers else {}
        refunds = await refunds_of_orders(self._db, numbers) if numbers else {}
        return [
            _stored_view(o, await tickets_of_order(self._db, o.order_number)).model_copy(
                update={
                    "payment": stored_payment(bills.get(o.order_number)),
                    "refunds": stored_refunds(refunds.get(o.order_number, [])),
                }
            )
            for o in orders
        ]

    async def _with_fresh_payment(self, order: OrderOut, program_id: int, order_number: int) -> OrderOut:
        """The fresh view with its payment and refunds (none before the allocator decided)."""
        if order.status == PENDING:
            return order
        if self._payments is None:
            bills = await pay_bills_of_orders(self._db, [order_number])
            refunds = await refunds_of_orders(self._db, [order_number])
            payment, given_back = stored_payment(bills.get(order_number)), stored_refunds(refunds.get(order_number, []))
        else:
            marker, aggregate = await self._payments.read(program_id, order_number)
            payment, given_back = await fresh_payment(self._db, order_number, marker, aggregate)
        return order.model_copy(update={"payment": payment, "refunds": given_back})

    async def decided(self, user_id: int, order_number: int, timeout_s: float) -> OrderOut:
        """The order once the allocator has decided it, or as it is after ``timeout_s``."""
        return await self.until(user_id, order_number, timeout_s, lambda order: order.status != PENDING)

    async def ended(self, user_id: int, order_number: int, timeout_s: float) -> OrderOut:
        """The order once it is no longer unpaid (cancelled, expired or paid), or as it is after ``timeout_s``."""
        return await self.until(user_id, order_number, timeout_s, lambda order: order.status != UNPAID)

    async def until(
        self, user_id: int, order_number: int, timeout_s: float, done: Callable[[OrderOut], bool]
    ) -> OrderOut:
        """The order once ``done`` holds of it, or as it is after ``timeout_s``: from Redis, read
        every 5 ms at first, then every 50 ms; the payment once, at the end. An order no longer
        fresh is answered from its shard at once (``ORDER_NOT_FOUND`` for another user's)."""
        placed = await self._index.placed(user_id, order_number)
        if placed is None:
            return await self.order(user_id, order_number)
        deadline = time.monotonic() + timeout_s
        pause = FIRST_POLL_S
        while True:
            order = _view(order_number, placed, await self._decisions.decision(placed.program_id, order_number))
            if done(order) or time.monotonic() + pause > deadline:
                return await self._with_fresh_payment(order, placed.program_id, order_number)
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_POLL_S)


def _stored_view(order: OrderRow, tickets: list[OrderTicketRow]) -> OrderOut:
    return OrderOut(
        order_number=str(order.order_number),
        status=order.status.value,
        reason=order.reject_reason,
        program_id=str(order.program_id),
        show_time_id=str(order.show_time_id),
        tickets=[
            TicketOut(
                seat_id=str(t.seat_id) if t.seat_id is not None else None,
                row=t.row_number,
                column=t.column_number,
                price=f"{t.price:.2f}",
                ticket_category_id=str(t.ticket_category_id),
                ticket_buyer_id=str(t.ticket_buyer_id) if t.ticket_buyer_id is not None else None,
            )
            for t in tickets
        ],
        total_amount=f"{order.total_amount:.2f}",
        pay_deadline=order.pay_deadline,
        created_at=order.created_at,
    )


def _view(order_number: int, placed: PlacedOrder, decision: dict[str, Any] | None) -> OrderOut:
    if decision is None:
        status, tickets, total, pay, reason = PENDING, [], Decimal("0.00"), None, None
    else:
        status = VIEW_STATUS.get(decision["status"], decision["status"])
        tickets = [
            TicketOut(
                seat_id=str(seat) if seat else None,
                ticket_category_id=str(category),
                row=int(row) if seat else None,
                column=int(column) if seat else None,
                price=f"{Decimal(price):.2f}",
                ticket_buyer_id=str(buyer) if buyer else None,
            )
            for seat, category, row, column, price, buyer in decision.get("t", ())
        ]
        total = Decimal(decision.get("total", "0"))
        pay = datetime.fromtimestamp(int(decision["pay"]) / 1000, UTC) if "pay" in decision else None
        reason = decision.get("r")
    return OrderOut(
        order_number=str(order_number),
        status=status,
        reason=reason,
        program_id=str(placed.program_id),
        show_time_id=str(placed.show_time_id),
        tickets=tickets,
        total_amount=f"{total:.2f}",
        pay_deadline=pay,
        created_at=placed.requested_at,
    )
