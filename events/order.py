"""Order events: a buyer's request for seats (an intent the allocator decides), the allocator's
decision, and the order's life after it.

``OrderRequested`` travels on ``order-requests``, keyed per program (``order-requests-<program id>``),
so one allocator decides all of a program's requests in the order they were accepted. It carries
what the decision needs and nothing it would have to look up elsewhere: the program's rules as the
API read them when it accepted the request, and each ticket buyer's document blind index (never the
document). Its envelope's version is always 1: the requests of a program are not an aggregate's
history; Kafka's offsets order them.

Everything after the decision is the order's own history, on ``order``, keyed ``order-<number>``:
``SeatsReserved`` or ``OrderRejected`` (event ids derived from the order number, so deciding a
request again appends the same event), then ``PaymentConfirmed``, ``OrderCancelled`` or
``OrderExpired``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from events.base import DomainEvent
from events.program import (
    REFUND_DEADLINE_HOURS_MAX,
    EntityId,
    Moment,
    SeatColumn,
    SeatRow,
    SmallCount,
    StoredPrice,
)
from events.registry import register_event, upcaster
from events.user import BlindIndexHex

ORDER_REQUESTS_FAMILY = "order-requests"
ORDER_FAMILY = "order"
TICKETS_PER_ORDER_MAX = 20
"""The most tickets one order may hold, whatever a program's per-order limit says."""

OrderNumber = EntityId
"""A gene order number (docs/ids.md): a 63-bit snowflake whose low bits are the user's gene."""


PaymentId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
"""The provider's number of the trade that paid (Alipay's ``trade_no``), or of a refund."""


def order_key(order_number: int) -> str:
    return f"order-{order_number}"


def order_requests_key(program_id: int) -> str:
    """The Kafka key of a program's order requests: one partition, one allocator, per program."""
    return f"order-requests-{program_id}"


class RejectionReason(StrEnum):
    """Why the allocator refused a request; each is the ``code`` of the answer the buyer gets."""

    SOLD_OUT = "SOLD_OUT"
    NO_ADJACENT_SEATS = "NO_ADJACENT_SEATS"
    SEAT_NOT_FOUND = "SEAT_NOT_FOUND"
    SEAT_UNAVAILABLE = "SEAT_UNAVAILABLE"
    PRICE_CHANGED = "PRICE_CHANGED"
    PER_ACCOUNT_LIMIT = "PER_ACCOUNT_LIMIT"
    TICKET_BUYER_HAS_TICKET = "TICKET_BUYER_HAS_TICKET"
    DEADLINE_PASSED = "DEADLINE_PASSED"


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)


class ChosenSeat(_Part):
    seat_id: EntityId
    price: StoredPrice
    """The price the buyer saw; the seat is refused (``PRICE_CHANGED``) if it is not the price now."""


class TicketBuyerDocument(_Part):
    """A ticket buyer the order names, with the blind index of their document (one ticket per
    document per show where the program requires real names)."""

    ticket_buyer_id: EntityId
    id_number_blind: BlindIndexHex


class OrderRules(_Part):
    """The program's rules as the API read them when it accepted the request."""

    per_account_limit: SmallCount
    real_name_required: bool
    payment_minutes: SmallCount
    seat_selectable: bool
    """Seated (every category has a seat layout) or general admission (categories counted by total)."""


@register_event
class OrderRequested(DomainEvent):
    """A buyer asked for seats: ``count`` seats of ``ticket_category_id`` chosen by the allocator,
    or the ``seats`` the buyer chose. Decided before ``deadline`` or rejected."""

    event_type = "OrderRequested"
    topic_family = ORDER_REQUESTS_FAMILY

    order_number: OrderNumber
    user_id: EntityId
    program_id: EntityId
    show_time_id: EntityId
    ticket_category_id: EntityId | None = None
    count: int | None = Field(default=None, ge=1, le=TICKETS_PER_ORDER_MAX)
    seats: tuple[ChosenSeat, ...] = Field(default=(), max_length=TICKETS_PER_ORDER_MAX)
    ticket_buyers: tuple[TicketBuyerDocument, ...] = Field(default=(), max_length=TICKETS_PER_ORDER_MAX)
    rules: OrderRules
    deadline: Moment

    @model_validator(mode="after")
    def _automatic_or_chosen(self) -> OrderRequested:
        automatic = self.ticket_category_id is not None and self.count is not None and not self.seats
        chosen = self.ticket_category_id is None and self.count is None and bool(self.seats)
        if not (automatic or chosen):
            raise ValueError("either ticketCategoryId and count, or seats")
        return self

    @property
    def tickets(self) -> int:
        return self.count if self.count is not None else len(self.seats)

    def aggregate_key(self) -> str:
        return order_requests_key(self.program_id)


class OrderEvent(DomainEvent):
    topic_family = ORDER_FAMILY

    order_number: OrderNumber

    def aggregate_key(self) -> str:
        return order_key(self.order_number)


class HeldTicket(_Part):
    """A ticket the order holds: a seat of ``ticket_category_id`` (its ``seat_id``, ``row`` and
    ``column``), or, in a category counted by its total (general admission: a livehouse's standing
    tickets), none of the three, since such a ticket is one of the category's count, not a seat."""

    seat_id: EntityId | None = None
    ticket_category_id: EntityId
    row: SeatRow | None = None
    column: SeatColumn | None = None
    price: StoredPrice
    ticket_buyer_id: EntityId | None = None

    @model_validator(mode="after")
    def _a_seat_or_none(self) -> HeldTicket:
        given = [v is not None for v in (self.seat_id, self.row, self.column)]
        if any(given) and not all(given):
            raise ValueError("seatId, row and column: all three (a seat) or none (general admission)")
        return self


@register_event
class SeatsReserved(OrderEvent):
    """The allocator held these tickets for the order until ``pay_deadline``: seats, or counts of a
    general-admission category (tickets without a seat)."""

    event_type = "SeatsReserved"

    user_id: EntityId
    program_id: EntityId
    show_time_id: EntityId
    tickets: tuple[HeldTicket, ...] = Field(min_length=1, max_length=TICKETS_PER_ORDER_MAX)
    total_amount: StoredPrice
    pay_deadline: Moment
    requested_at: Moment
    hold_sequence: int = Field(ge=1, le=2**63 - 1)
    """The program's count of holds with this one (``lua/order_reserve.lua``): a seat held by two
    orders in turn was held last by the one with the higher sequence, whatever partitions the two
    orders are in (``projections/order_projector.py``)."""


@register_event
class OrderRejected(OrderEvent):
    event_type = "OrderRejected"

    user_id: EntityId
    program_id: EntityId
    show_time_id: EntityId
    reason: RejectionReason
    requested_at: Moment


# -- after the decision -------------------------------------------------------------------------


@register_event
class CancelRequested(OrderEvent):
    """The buyer asked to cancel (an intent the lifecycle decides: only a held order is cancelled)."""

    event_type = "CancelRequested"

    user_id: EntityId
    program_id: EntityId


class OrderEnded(OrderEvent):
    user_id: EntityId
    program_id: EntityId


@register_event
class OrderCancelled(OrderEnded):
    """Cancelled by its buyer before paying: its tickets are back on sale."""

    event_type = "OrderCancelled"


@register_event
class OrderExpired(OrderEnded):
    """Not paid by its payment deadline: its tickets are back on sale."""

    event_type = "OrderExpired"


@register_event
class PaymentConfirmed(OrderEvent):
    """The payment provider confirmed the order's payment (the payments issue appends it)."""

    event_type = "PaymentConfirmed"

    user_id: EntityId
    program_id: EntityId
    payment_id: PaymentId
    amount: StoredPrice
    paid_at: Moment


@register_event
class OrderPaid(OrderEnded):
    """Paid while held: its seats are sold. Schema 2 names the payment (schema 1 had none)."""

    event_type = "OrderPaid"
    schema_version = 2

    payment_id: PaymentId | None = None
    amount: StoredPrice | None = None
    paid_at: Moment | None = None


@upcaster("OrderPaid", from_version=1)
def _order_paid_names_its_payment(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "paymentId": None, "amount": None, "paidAt": None}


@register_event
class RefundRequired(OrderEnded):
    """The money of one payment goes back: it arrived for an order already cancelled or expired
    (the order stays so until the refund is confirmed), or the paid order's buyer or an admin asked
    for a refund (the order is refunded at once: its seats are back on sale)."""

    event_type = "RefundRequired"

    payment_id: PaymentId
    amount: StoredPrice


@register_event
class RefundRequested(OrderEvent):
    """The buyer (or, ``by_admin``, support staff, whatever the policy) asked for a paid order's
    money back: an intent the lifecycle decides. It carries the program's refund policy and the
    show's start as the API read them."""

    event_type = "RefundRequested"

    user_id: EntityId
    program_id: EntityId
    by_admin: bool
    refundable: bool
    deadline_hours_before_show: int = Field(ge=0, le=REFUND_DEADLINE_HOURS_MAX)
    show_starts_at: Moment
    reason: Annotated[str, Field(max_length=200)] = ""


@register_event
class RefundConfirmed(OrderEvent):
    """The provider gave the payment's money back (the payment processor appends it after its
    ``RefundSucceeded``): an intent the lifecycle decides into ``OrderRefunded``."""

    event_type = "RefundConfirmed"

    user_id: EntityId
    program_id: EntityId
    payment_id: PaymentId
    refund_number: PaymentId
    amount: StoredPrice
    refunded_at: Moment


@register_event
class OrderRefunded(OrderEnded):
    """The payment's money is back with the buyer: the order ends refunded."""

    event_type = "OrderRefunded"

    payment_id: PaymentId
    refund_number: PaymentId
    amount: StoredPrice
    refunded_at: Moment
