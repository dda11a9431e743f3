"""The Order aggregate: one order's life from the allocator's decision to its end (issue 11).

::

    requested ──▶ unpaid (seats held) ──▶ paid
        │               ├──────────────▶ cancelled ─┐
        │               └──────────────▶ expired  ──┼─▶ a payment after it: RefundRequired
        └─────────▶ rejected ───────────────────────┘

*Requested* is the order before its aggregate exists: an ``OrderRequested`` on ``order-requests``
(keyed by program), which the allocator decides into this aggregate's first event,
``SeatsReserved`` or ``OrderRejected`` (version 1, on ``order``, keyed ``order-<number>``); both
create the aggregate. After that the order lifecycle, the one writer of the order's partition, asks the aggregate what
follows a cancel request, the payment deadline or a confirmed payment; each rule is a public
method here, and the event classes only apply. They are written out rather than made by
``@event``: two of them create an order, and an ending or a refund keeps its own version and time
(which an ``@event`` method does not see), so it can be appended again, the same, after a crash.

The seats themselves are not here: the allocator's decision in Redis holds them, and
``lua/order_release.lua`` gives them back or sells them when the ending this aggregate decided is
saved (docs/orders.md, "The Order aggregate").
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict

from aggregates.base import Aggregate, Decided
from aggregates.errors import Conflict
from events.envelope import EventEnvelope
from events.order import ORDER_FAMILY, HeldTicket, RejectionReason, order_key
from events.registry import event_class


class OrderStatus(StrEnum):
    """Where a decided order stands (the order view adds ``pending`` before, ``refunded`` after)."""

    UNPAID = "unpaid"
    REJECTED = "rejected"
    PAID = "paid"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


NOT_DUE = "ORDER_NOT_DUE"
"""The code of an expiry asked for before the payment deadline."""
ORDER_EVENTS = frozenset(
    {"SeatsReserved", "OrderRejected", "OrderPaid", "OrderCancelled", "OrderExpired", "RefundRequired"}
)
"""The order's own events (its history); the rest of ``order`` are intents for the lifecycle."""


class Refund(BaseModel):
    """A payment to give back, and the event that said so (to append it again, the same)."""

    model_config = ConfigDict(frozen=True)

    amount: Decimal
    version: int
    at: datetime


class _Ended(Aggregate.Event):
    """Paid, cancelled or expired: the order's one ending, remembered with its version and time."""

    status: ClassVar[OrderStatus]

    def apply(self, aggregate: Any) -> None:
        aggregate.status = self.status
        aggregate.ended_at = self.timestamp
        aggregate.ended_version = self.originator_version


class Order(Aggregate):
    topic_family = ORDER_FAMILY

    class SeatsReserved(Aggregate.Created):
        order_number: int
        user_id: int
        program_id: int
        show_time_id: int
        tickets: tuple[HeldTicket, ...]
        total_amount: Decimal
        pay_deadline: datetime
        requested_at: datetime
        hold_sequence: int

        def apply(self, aggregate: Any) -> None:
            aggregate.status = OrderStatus.UNPAID
            aggregate.tickets = self.tickets
            aggregate.total_amount = self.total_amount
            aggregate.pay_deadline = self.pay_deadline

    class OrderRejected(Aggregate.Created):
        order_number: int
        user_id: int
        program_id: int
        show_time_id: int
        reason: RejectionReason
        requested_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.status = OrderStatus.REJECTED
            aggregate.reason = self.reason

    class OrderPaid(_Ended):
        status = OrderStatus.PAID

    class OrderCancelled(_Ended):
        status = OrderStatus.CANCELLED

    class OrderExpired(_Ended):
        status = OrderStatus.EXPIRED

    class RefundRequired(Aggregate.Event):
        payment_id: str
        amount: Decimal

        def apply(self, aggregate: Any) -> None:
            aggregate.refunds[self.payment_id] = Refund(
                amount=self.amount, version=self.originator_version, at=self.timestamp
            )

    order_number: int
    user_id: int
    program_id: int
    show_time_id: int
    requested_at: datetime
    status: OrderStatus
    reason: RejectionReason | None
    tickets: tuple[HeldTicket, ...]
    total_amount: Decimal | None
    pay_deadline: datetime | None
    ended_at: datetime | None
    """When it was paid, cancelled or expired."""
    ended_version: int | None
    """The version of that ending, so it can be appended again, the same, after a crash."""
    refunds: dict[str, Refund]
    """Payments to give back, by payment id: each confirmed after the order had ended."""

    @staticmethod
    def create_id(order_number: int) -> str:
        return order_key(order_number)

    def identity(self) -> dict[str, Any]:
        return {"order_number": self.order_number, "user_id": self.user_id, "program_id": self.program_id}

    def __init__(
        self, order_number: int, user_id: int, program_id: int, show_time_id: int, requested_at: datetime
    ) -> None:
        self.order_number = order_number
        self.user_id = user_id
        self.program_id = program_id
        self.show_time_id = show_time_id
        self.requested_at = requested_at
        self.reason = None
        self.tickets = ()
        self.total_amount = None
        self.pay_deadline = None
        self.ended_at = None
        self.ended_version = None
        self.refunds = {}

    # -- the allocator's decision ---------------------------------------------------------------

    @classmethod
    def hold(
        cls,
        order_number: int,
        user_id: int,
        program_id: int,
        show_time_id: int,
        tickets: tuple[HeldTicket, ...],
        total_amount: Decimal,
        pay_deadline: datetime,
        requested_at: datetime,
        hold_sequence: int,
    ) -> Self:
        """Requested → unpaid: the allocator held ``tickets`` until ``pay_deadline``, its program's
        hold number ``hold_sequence``."""
        return cls._create(
            cls.SeatsReserved,
            id=cls.create_id(order_number),
            order_number=order_number,
            user_id=user_id,
            program_id=program_id,
            show_time_id=show_time_id,
            tickets=tickets,
            total_amount=total_amount,
            pay_deadline=pay_deadline,
            requested_at=requested_at,
            hold_sequence=hold_sequence,
        )

    @classmethod
    def reject(
        cls,
        order_number: int,
        user_id: int,
        program_id: int,
        show_time_id: int,
        reason: RejectionReason,
        requested_at: datetime,
    ) -> Self:
        """Requested → rejected, for ``reason``."""
        return cls._create(
            cls.OrderRejected,
            id=cls.create_id(order_number),
            order_number=order_number,
            user_id=user_id,
            program_id=program_id,
            show_time_id=show_time_id,
            reason=reason,
            requested_at=requested_at,
        )

    # -- after the hold ----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Unpaid → cancelled, by its buyer; refused (``ORDER_NOT_CANCELLABLE``) in any other state."""
        self._check_unpaid("cancelled", "ORDER_NOT_CANCELLABLE")
        self.trigger_event(self.OrderCancelled)

    def expire(self, now: datetime) -> None:
        """Unpaid → expired, once its payment deadline has passed (``ORDER_NOT_DUE`` before it)."""
        self._check_unpaid("expired", "ORDER_NOT_EXPIRABLE")
        assert self.pay_deadline is not None
        if now < self.pay_deadline:
            raise Conflict(
                "the payment deadline has not passed",
                code=NOT_DUE,
                details={"payDeadline": self.pay_deadline.isoformat()},
            )
        self.trigger_event(self.OrderExpired)

    def confirm_payment(self, payment_id: str, amount: Decimal) -> None:
        """A payment the provider confirmed: unpaid → paid; after a cancel, an expiry or a rejection
        the money goes back (``RefundRequired``, once per payment); a paid order changes nothing."""
        if self.status is OrderStatus.UNPAID:
            self.trigger_event(self.OrderPaid)
        elif self.status is not OrderStatus.PAID and payment_id not in self.refunds:
            self.trigger_event(self.RefundRequired, payment_id=payment_id, amount=amount)

    # -- reading -----------------------------------------------------------------------------------

    def ending(self) -> Decided | None:
        """The ending already decided (paid, cancelled, expired) as it was first decided; None
        while unpaid or rejected. Appending it again changes nothing (the same id, the same
        version), which is how a crash between deciding and appending is made good."""
        if self.ended_at is None or self.ended_version is None:
            return None
        [kind] = [k for k in (self.OrderPaid, self.OrderCancelled, self.OrderExpired) if k.status is self.status]
        return Decided(event_class(kind.__name__)(**self.identity()), self.ended_version, self.ended_at)

    def refund_for(self, payment_id: str) -> Decided | None:
        """The ``RefundRequired`` decided for this payment, as it was decided; None if none was."""
        refund = self.refunds.get(payment_id)
        if refund is None:
            return None
        fields = {**self.identity(), "payment_id": payment_id, "amount": refund.amount}
        return Decided(event_class("RefundRequired")(**fields), refund.version, refund.at)

    @classmethod
    def from_log(cls, envelopes: Iterable[EventEnvelope]) -> Self | None:
        """The order as its events in the log have it (read back from its partition). The intents
        that share its key (``CancelRequested``, ``PaymentConfirmed``) are not its events; an
        ending appended before its hold reached the log is put back in order."""
        facts = sorted((e for e in envelopes if e.type in ORDER_EVENTS), key=lambda e: e.aggregate_version)
        return cls.replay(facts)

    def _check_unpaid(self, ending: str, code: str) -> None:
        if self.status is not OrderStatus.UNPAID:
            raise Conflict(
                f"only an unpaid order can be {ending}; this one is {self.status.value}",
                code=code,
                details={"status": self.status.value},
            )
