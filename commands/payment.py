"""Paying for an order, hearing from the provider, and giving money back (issue 12,
docs/payments.md).

- ``start_payment``: the buyer's unpaid order gets one pay bill (``PayBill``) of its whole amount,
  and the URL of the provider's page to pay it. The bill is marked in the program's slot before the
  answer, so the lifecycle never expires an order someone may have paid without asking first.
- ``accept_notification``: the provider's asynchronous notification, checked by the channel's
  adapter (signature, app) and by the bill (its trade, its amount), is recorded once per trade
  (``PaymentNotified``); the payment processor hands it to the order, which decides.
- ``check_payment``: the buyer asks; the provider's answer is recorded as a notification would be.
- ``request_refund``: the buyer (within the program's policy) or an admin (whatever the policy)
  asks for a paid order's money back; the lifecycle's Order aggregate decides.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from aggregates.errors import Conflict, InvalidCommand, NotFound
from aggregates.order import NOT_REFUNDABLE, check_refund_policy
from aggregates.pay_bill import PayBill
from commands.order import HELD, EventLog, OrderIndex
from commands.ports import (
    AggregateStore,
    Clock,
    IdSource,
    PaymentProvider,
    PaymentRefused,
    Trade,
    TradeRequest,
    change,
)
from events.envelope import EventEnvelope
from events.order import RefundRequested
from events.payment import PaymentSource, pay_bill_key
from events.program import RefundPolicy

SOLD = "sold"
SUBJECT = "Damai order {order_number}"
"""What the provider's page says the buyer pays for."""


class OrderDecisions(Protocol):
    async def decision(self, program_id: int, order_number: int) -> dict[str, Any] | None:
        """The allocator's decision as stored (``status``, ``total``, ``pay`` ms); None before it."""
        ...


class BillMarkers(Protocol):
    async def mark(self, bill: PayBill, decided_at: datetime) -> None:
        """Remember the order's open bill where the lifecycle and the reconciler find it."""
        ...

    async def channel_of(self, program_id: int, order_number: int) -> str | None: ...


class RefundPolicies(Protocol):
    async def policy(self, program_id: int, show_time_id: int) -> tuple[RefundPolicy, datetime] | None:
        """The program's refund policy and the show time's start; None for an unknown one."""
        ...


@dataclass(frozen=True)
class Payments:
    """What the payment handlers work with (built by ``bootstrap.py``)."""

    store: AggregateStore
    providers: Mapping[str, PaymentProvider]
    index: OrderIndex
    decisions: OrderDecisions
    bills: BillMarkers
    policies: RefundPolicies
    ids: IdSource
    log: EventLog
    clock: Clock
    append_timeout_s: float


@dataclass(frozen=True)
class StartedPayment:
    pay_bill_id: int
    channel: str
    amount: Decimal
    pay_url: str


def provider_of(payments: Payments, channel: str) -> PaymentProvider:
    provider = payments.providers.get(channel)
    if provider is None:
        raise InvalidCommand(
            f"no payment channel {channel!r}",
            code="PAYMENT_CHANNEL_UNKNOWN",
            details={"channel": channel, "channels": sorted(payments.providers)},
        )
    return provider


async def start_payment(
    user_id: int, order_number: int, channel: str, payments: Payments, correlation_id: uuid.UUID | None
) -> StartedPayment:
    """The order's bill (opened now, or the one opened before) and where to pay it.

    ``ORDER_NOT_FOUND`` (404) for an order that is not the user's; ``ORDER_NOT_PAYABLE`` (409)
    unless it is unpaid; ``PAYMENT_CHANNEL_MISMATCH`` (409) when its bill is of another channel."""
    provider = provider_of(payments, channel)
    program_id, decision = await _own_decision(user_id, order_number, payments)
    if decision is None or decision["status"] != HELD:
        raise Conflict(
            "only an unpaid order can be paid",
            code="ORDER_NOT_PAYABLE",
            details={"orderNumber": str(order_number), "status": _status(decision)},
        )
    amount = Decimal(decision["total"])
    pay_deadline = datetime.fromtimestamp(int(decision["pay"]) / 1000, UTC)

    def decide(bill: PayBill | None) -> PayBill:
        if bill is not None:
            return bill
        return PayBill.open(order_number, payments.ids.next_entity_id(), user_id, program_id, channel, amount)

    bill, _ = await change(payments.store, PayBill, pay_bill_key(order_number), decide, correlation_id)
    if bill.channel != channel:
        raise Conflict(
            f"the order's bill is to be paid through {bill.channel}",
            code="PAYMENT_CHANNEL_MISMATCH",
            details={"orderNumber": str(order_number), "channel": bill.channel},
        )
    await payments.bills.mark(bill, payments.clock())
    trade = TradeRequest(
        out_trade_no=str(order_number),
        amount=bill.amount,
        subject=SUBJECT.format(order_number=order_number),
        timeout_at=pay_deadline,
    )
    return StartedPayment(bill.pay_bill_id, bill.channel, bill.amount, provider.pay_url(trade))


async def accept_notification(
    channel: str, form: Mapping[str, str], payments: Payments, correlation_id: uuid.UUID | None
) -> str:
    """Record what a provider's notification says: ``recorded`` (a payment recorded now),
    ``duplicate`` (recorded before) or ``not_paid`` (a trade created or closed: nothing to record).
    ``PaymentRefused`` when the channel's adapter or the bill refuses it: an unknown trade, a wrong
    amount; nothing is recorded then."""
    trade = provider_of(payments, channel).verify_notification(form)
    if not trade.status.paid:
        return "not_paid"
    store, clock = payments.store, payments.clock
    recorded = await record_payment(store, channel, trade, PaymentSource.NOTIFY, correlation_id, clock)
    return "recorded" if recorded else "duplicate"


async def record_payment(
    store: AggregateStore,
    channel: str,
    trade: Trade,
    source: PaymentSource,
    correlation_id: uuid.UUID | None,
    clock: Clock,
) -> bool:
    """Record the provider's paid ``trade`` on its order's bill, once per trade (True the first time)."""
    try:
        order_number = int(trade.out_trade_no)
    except ValueError:
        raise PaymentRefused("unknown_trade", f"no order {trade.out_trade_no!r}") from None
    recorded = False

    def decide(bill: PayBill | None) -> PayBill:
        nonlocal recorded
        if bill is None or bill.channel != channel:
            raise PaymentRefused("unknown_trade", f"no bill of order {order_number} through {channel}")
        try:
            recorded = bill.record_payment(trade.trade_no, trade.amount, trade.paid_at or clock(), source)
        except Conflict as exc:
            raise PaymentRefused("amount", str(exc)) from None
        return bill

    await change(store, PayBill, pay_bill_key(order_number), decide, correlation_id)
    return recorded


async def check_payment(
    user_id: int, order_number: int, payments: Payments, correlation_id: uuid.UUID | None
) -> Trade:
    """Ask the order's provider about its trade; a paid one is recorded as a notification would be.

    ``PAY_BILL_NOT_FOUND`` (404) when the order has no bill."""
    program_id, _ = await _own_decision(user_id, order_number, payments)
    channel = await payments.bills.channel_of(program_id, order_number)
    if channel is None:
        bill = await payments.store.load(PayBill, pay_bill_key(order_number))
        channel = bill.channel if bill is not None else None
    if channel is None:
        raise NotFound(
            "the order has no pay bill", code="PAY_BILL_NOT_FOUND", details={"orderNumber": str(order_number)}
        )
    trade = await provider_of(payments, channel).query_trade(str(order_number))
    if trade.status.paid:
        await record_payment(payments.store, channel, trade, PaymentSource.CHECK, correlation_id, payments.clock)
    return trade


async def request_refund(
    order_number: int,
    user_id: int,
    program_id: int,
    show_time_id: int,
    payments: Payments,
    correlation_id: uuid.UUID | None,
    *,
    by_admin: bool,
    reason: str = "",
) -> None:
    """Ask the lifecycle to refund a paid order (the Order aggregate decides). Answered here first,
    with the aggregate's codes, when it plainly cannot be: ``ORDER_NOT_REFUNDABLE`` (409) unless
    paid; ``REFUND_NOT_ALLOWED`` (409) when the buyer asks outside the program's policy."""
    decision = await payments.decisions.decision(program_id, order_number)
    if decision is not None and decision["status"] != SOLD:
        raise Conflict(
            "only a paid order can be refunded",
            code=NOT_REFUNDABLE,
            details={"orderNumber": str(order_number), "status": _status(decision)},
        )
    found = await payments.policies.policy(program_id, show_time_id)
    if found is None:
        raise NotFound("the order's show time is gone", code="SHOW_TIME_NOT_FOUND", details={})
    policy, starts_at = found
    if not by_admin:
        check_refund_policy(policy, starts_at, payments.clock())
    intent = RefundRequested(
        order_number=order_number,
        user_id=user_id,
        program_id=program_id,
        by_admin=by_admin,
        refundable=policy.refundable,
        deadline_hours_before_show=policy.deadline_hours_before_show,
        show_starts_at=starts_at,
        reason=reason,
    )
    envelope = EventEnvelope.wrap(intent, aggregate_version=1, correlation_id=correlation_id)
    await payments.log.append([envelope], payments.append_timeout_s)


async def _own_decision(user_id: int, order_number: int, payments: Payments) -> tuple[int, dict[str, Any] | None]:
    placed = await payments.index.placed(user_id, order_number)
    if placed is None:
        raise NotFound(f"no order {order_number}", code="ORDER_NOT_FOUND", details={"orderNumber": str(order_number)})
    return placed.program_id, await payments.decisions.decision(placed.program_id, order_number)


def _status(decision: dict[str, Any] | None) -> str:
    return "pending" if decision is None else str(decision["status"])
