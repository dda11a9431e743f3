"""The Order aggregate: one order's life from the allocator's decision to its end (issue 11).

::

    requested ──▶ unpaid (seats held) ──▶ paid ──▶ (refund asked: RefundRequired) refunded
        │               ├──────────────▶ cancelled ─┐
        │               └──────────────▶ expired  ──┴─▶ a payment after it: RefundRequired,
        └─────────▶ rejected                             then, once the provider gave it back, refunded

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
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict

from aggregates.base import Aggregate, Decided
from aggregates.errors import Conflict
from events.envelope import EventEnvelope
from events.order import ORDER_FAMILY, HeldTicket, RejectionReason, order_key
from events.program import RefundPolicy
from events.registry import event_class


class OrderStatus(StrEnum):
    """Where a decided order stands (the order view adds ``pending`` before, ``refunded`` after)."""

    UNPAID = "unpaid"
    REJECTED = "rejected"
    PAID = "paid"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUNDED = "refunded"


NOT_DUE = "ORDER_NOT_DUE"
"""The code of an expiry asked for before the payment deadline."""
NOT_REFUNDABLE = "ORDER_NOT_REFUNDABLE"
REFUND_NOT_ALLOWED = "REFUND_NOT_ALLOWED"
ORDER_EVENTS = frozenset(
    {
        "SeatsReserved",
        "OrderRejected",
        "OrderPaid",
        "OrderCancelled",
        "OrderExpired",
        "RefundRequired",
        "OrderRefunded",
    }
)
"""The order's own events (its history); the rest of ``order`` are intents for the lifecycle."""


def check_refund_policy(policy: RefundPolicy, show_starts_at: datetime, now: datetime) -> None:
    """A buyer may have a paid order refunded while the program is refundable and the show is more
    than its policy's hours away; ``REFUND_NOT_ALLOWED`` otherwise."""
    cut_off = show_starts_at - timedelta(hours=policy.deadline_hours_before_show)
    if not policy.refundable or now > cut_off:
        raise Conflict(
            "the program's refund policy does not allow a refund now",
            code=REFUND_NOT_ALLOWED,
            details={"refundable": policy.refundable, "refundableUntil": cut_off.isoformat()},
        )


class Payment(BaseModel):
    """The payment that paid the order."""

    model_config = ConfigDict(frozen=True)

    payment_id: str
    amount: Decimal
    paid_at: datetime


class Refund(BaseModel):
    """A payment to give back, and the event that said so (to append it again, the same); once the
    provider gave it back, its refund number and time, and the event that said that."""

    model_config = ConfigDict(frozen=True)

    amount: Decimal
    version: int
    at: datetime
    refund_number: str | None = None
    refunded_at: datetime | None = None
    refunded_version: int | None = None
    refunded_recorded_at: datetime | None = None


class _Ended(Aggregate.Event):
    """Paid, cancelled or expired: the order's one ending, remembered with its version and time."""

    status: ClassVar[OrderStatus]

    def apply(self, aggregate: Any) -> None:
        aggregate.status = self.status
        aggregate.ended_as = self.status
        aggregate.ended_at = self.timestamp
        aggregate.ended_version = self.originator_version


class Order(Aggregate):
    topic_family = ORDER_FAMILY
    snapshot_version = 2
    """2: the payment, how it ended, and the refunds' outcomes."""

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
        payment_id: str | None
        amount: Decimal | None
        paid_at: datetime | None

        def apply(self, aggregate: Any) -> None:
            super().apply(aggregate)
            if self.payment_id is not None and self.amount is not None and self.paid_at is not None:
                aggregate.payment = Payment(payment_id=self.payment_id, amount=self.amount, paid_at=self.paid_at)

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
            paying = aggregate.payment
            if aggregate.status is OrderStatus.PAID and paying is not None and paying.payment_id == self.payment_id:
                aggregate.status = OrderStatus.REFUNDED  # its own payment's refund asked for: the seats go back now

    class OrderRefunded(Aggregate.Event):
        payment_id: str
        refund_number: str
        amount: Decimal
        refunded_at: datetime

        def apply(self, aggregate: Any) -> None:
            refund = aggregate.refunds[self.payment_id]
            aggregate.refunds[self.payment_id] = refund.model_copy(
                update={
                    "refund_number": self.refund_number,
                    "refunded_at": self.refunded_at,
                    "refunded_version": self.originator_version,
                    "refunded_recorded_at": self.timestamp,
                }
            )
            if aggregate.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
                aggregate.status = OrderStatus.REFUNDED  # it ends refunded; a paid (or rejected) one stays so

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
    ended_as: OrderStatus | None
    """How it ended: paid, cancelled or expired (a refund comes after)."""
    ended_at: datetime | None
    """When it was paid, cancelled or expired."""
    ended_version: int | None
    """The version of that ending, so it can be appended again, the same, after a crash."""
    payment: Payment | None
    """The payment that paid it (None before, and for an order paid before payments were named)."""
    refunds: dict[str, Refund]
    """Payments to give back, by payment id: each confirmed after the order had ended, or the
    order's own payment when its refund was asked for."""

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
        self.ended_as = None
        self.ended_at = None
        self.ended_version = None
        self.payment = None
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

    def confirm_payment(self, payment_id: str, amount: Decimal, paid_at: datetime) -> None:
        """A payment the provider confirmed: unpaid → paid; after a cancel, an expiry or a rejection
        the money goes back (``RefundRequired``, once per payment); the payment that paid the order
        changes nothing. A second, different payment of a paid order goes back too."""
        if self.status is OrderStatus.UNPAID:
            self.trigger_event(self.OrderPaid, payment_id=payment_id, amount=amount, paid_at=paid_at)
        elif not self._paid_by(payment_id) and payment_id not in self.refunds:
            self.trigger_event(self.RefundRequired, payment_id=payment_id, amount=amount)

    def request_refund(self, policy: RefundPolicy, show_starts_at: datetime, now: datetime, by_admin: bool) -> None:
        """Paid → refunded: the seats go back on sale now and the payment's money is given back
        (``RefundRequired``). The buyer may ask while the program's policy allows it (refundable,
        up to its hours before the show, ``REFUND_NOT_ALLOWED`` otherwise); an admin whatever the
        policy (a cancelled show). ``ORDER_NOT_REFUNDABLE`` unless the order is paid."""
        if self.status is not OrderStatus.PAID or self.payment is None:
            raise Conflict(
                f"only a paid order can be refunded; this one is {self.status.value}",
                code=NOT_REFUNDABLE,
                details={"status": self.status.value},
            )
        if not by_admin:
            check_refund_policy(policy, show_starts_at, now)
        self.trigger_event(self.RefundRequired, payment_id=self.payment.payment_id, amount=self.payment.amount)

    def confirm_refund(self, payment_id: str, refund_number: str, amount: Decimal, refunded_at: datetime) -> None:
        """The provider gave a payment's money back: the order ends refunded (once per payment).
        Refused (``REFUND_NOT_REQUIRED``) for a payment it never asked to give back."""
        refund = self.refunds.get(payment_id)
        if refund is None:
            raise Conflict(
                "no refund of this payment was asked for",
                code="REFUND_NOT_REQUIRED",
                details={"paymentId": payment_id},
            )
        if refund.refunded_at is None:
            self.trigger_event(
                self.OrderRefunded,
                payment_id=payment_id,
                refund_number=refund_number,
                amount=amount,
                refunded_at=refunded_at,
            )

    def _paid_by(self, payment_id: str) -> bool:
        """The order was paid by this payment (or, paid before payments were named, by any)."""
        if self.ended_as is not OrderStatus.PAID:
            return False
        return self.payment is None or self.payment.payment_id == payment_id

    # -- reading -----------------------------------------------------------------------------------

    def ending(self) -> Decided | None:
        """The ending already decided (paid, cancelled, expired) as it was first decided; None
        while unpaid or rejected. Appending it again changes nothing (the same id, the same
        version), which is how a crash between deciding and appending is made good."""
        if self.ended_at is None or self.ended_version is None:
            return None
        kinds = (self.OrderPaid, self.OrderCancelled, self.OrderExpired)
        [kind] = [k for k in kinds if k.status is self.ended_as]
        fields = self.identity()
        if kind is self.OrderPaid and self.payment is not None:
            fields |= self.payment.model_dump()
        return Decided(event_class(kind.__name__)(**fields), self.ended_version, self.ended_at)

    def refund_for(self, payment_id: str) -> Decided | None:
        """The ``RefundRequired`` decided for this payment, as it was decided; None if none was."""
        refund = self.refunds.get(payment_id)
        if refund is None:
            return None
        fields = {**self.identity(), "payment_id": payment_id, "amount": refund.amount}
        return Decided(event_class("RefundRequired")(**fields), refund.version, refund.at)

    def refunded_for(self, payment_id: str) -> Decided | None:
        """The ``OrderRefunded`` of this payment, as it was decided; None before the provider gave
        the money back."""
        refund = self.refunds.get(payment_id)
        if refund is None or refund.refunded_version is None:
            return None
        assert refund.refund_number is not None and refund.refunded_at is not None
        assert refund.refunded_recorded_at is not None
        fields = {
            **self.identity(),
            "payment_id": payment_id,
            "refund_number": refund.refund_number,
            "amount": refund.amount,
            "refunded_at": refund.refunded_at,
        }
        return Decided(event_class("OrderRefunded")(**fields), refund.refunded_version, refund.refunded_recorded_at)

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
