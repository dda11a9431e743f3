"""Payment events: a pay bill's history, on ``payment``, keyed ``payment-<order number>``.

A bill is opened when its buyer starts paying an unpaid order (``PayBillCreated``: the amount is
the order's, never the client's); the provider's word that the buyer paid is recorded once per
provider trade (``PaymentNotified``, whether a notification, a check or the reconciler brought
it); each refund attempt ends recorded (``RefundSucceeded`` or ``RefundFailed``, retried until it
succeeds). The order's side — sold, or refunded — is the Order aggregate's (``events/order.py``):
the payment processor turns each ``PaymentNotified`` into the order's ``PaymentConfirmed`` intent.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from events.base import DomainEvent
from events.program import EntityId, Moment, StoredPrice
from events.registry import register_event

PAYMENT_FAMILY = "payment"

Channel = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[a-z][a-z0-9_]*$")]
ProviderNumber = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
"""A number the provider or this system gave a trade or a refund (printable ASCII)."""


def pay_bill_key(order_number: int) -> str:
    return f"payment-{order_number}"


class PaymentSource(StrEnum):
    """What told the system the buyer paid."""

    NOTIFY = "notify"
    """The provider's asynchronous notification."""
    CHECK = "check"
    """The buyer asked (``POST /api/v1/orders/{n}/payment/check``) and the provider said paid."""
    RECONCILER = "reconciler"
    """The background reconciler asked about a bill left open."""


class PaymentEvent(DomainEvent):
    topic_family = PAYMENT_FAMILY

    order_number: EntityId

    def aggregate_key(self) -> str:
        return pay_bill_key(self.order_number)


@register_event
class PayBillCreated(PaymentEvent):
    """The buyer started paying the order through ``channel``: the bill of its whole amount."""

    event_type = "PayBillCreated"

    pay_bill_id: EntityId
    user_id: EntityId
    program_id: EntityId
    channel: Channel
    amount: StoredPrice


@register_event
class PaymentNotified(PaymentEvent):
    """The provider says trade ``trade_no`` paid the bill (checked: its signature or its answer,
    the app, and the amount equal to the bill's)."""

    event_type = "PaymentNotified"

    pay_bill_id: EntityId
    user_id: EntityId
    program_id: EntityId
    channel: Channel
    trade_no: ProviderNumber
    amount: StoredPrice
    paid_at: Moment
    source: PaymentSource


@register_event
class RefundSucceeded(PaymentEvent):
    """The provider gave back ``amount`` of trade ``trade_no`` under our refund number."""

    event_type = "RefundSucceeded"

    pay_bill_id: EntityId
    trade_no: ProviderNumber
    refund_number: ProviderNumber
    amount: StoredPrice
    refunded_at: Moment


@register_event
class RefundFailed(PaymentEvent):
    """A refund attempt the provider did not carry out; it is tried again at ``retry_at``."""

    event_type = "RefundFailed"

    pay_bill_id: EntityId
    trade_no: ProviderNumber
    refund_number: ProviderNumber
    amount: StoredPrice
    attempt: int = Field(ge=1, le=1_000_000)
    error: Annotated[str, Field(max_length=500)]
    retry_at: Moment
