"""The PayBill aggregate: one order's payment at its provider, from the bill to its refunds.

One bill per order (its id is ``payment-<order number>``), opened when the buyer starts paying an
unpaid order, for the order's whole amount — never an amount a client sent. It records each trade
the provider says paid it, once (``PaymentNotified``: ten copies of one notification, or a
notification and a check of the same trade, are one payment), and refuses a trade of another
amount. The order's side — whether that payment buys the seats or goes back — is the Order
aggregate's (``aggregates/order.py``); this one keeps what the provider did: paid, refunded, a
refund attempt that failed.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from eventsourcing.domain import event

from aggregates.base import Aggregate
from aggregates.errors import Conflict
from events.payment import PAYMENT_FAMILY, PaymentSource, pay_bill_key

AMOUNT_MISMATCH = "PAYMENT_AMOUNT_MISMATCH"


class PayBill(Aggregate):
    topic_family = PAYMENT_FAMILY

    order_number: int
    pay_bill_id: int
    user_id: int
    program_id: int
    channel: str
    amount: Decimal
    payments: dict[str, datetime]
    """The provider's trades that paid the bill, with when they paid."""
    refunded: dict[str, Decimal]
    """Refunds carried out, by our refund number."""
    failed_attempts: dict[str, int]
    """Refund attempts the provider failed, by refund number."""

    @staticmethod
    def create_id(order_number: int) -> str:
        return pay_bill_key(order_number)

    def identity(self) -> dict[str, Any]:
        return {"order_number": self.order_number}

    @classmethod
    def open(
        cls, order_number: int, pay_bill_id: int, user_id: int, program_id: int, channel: str, amount: Decimal
    ) -> PayBill:
        """The bill of an unpaid order's ``amount`` (its total), to be paid through ``channel``."""
        return cls(
            order_number=order_number,
            pay_bill_id=pay_bill_id,
            user_id=user_id,
            program_id=program_id,
            channel=channel,
            amount=amount,
        )

    @event("PayBillCreated")
    def __init__(
        self, order_number: int, pay_bill_id: int, user_id: int, program_id: int, channel: str, amount: Decimal
    ) -> None:
        self.order_number = order_number
        self.pay_bill_id = pay_bill_id
        self.user_id = user_id
        self.program_id = program_id
        self.channel = channel
        self.amount = amount
        self.payments = {}
        self.refunded = {}
        self.failed_attempts = {}

    def record_payment(self, trade_no: str, amount: Decimal, paid_at: datetime, source: PaymentSource) -> bool:
        """The provider says trade ``trade_no`` paid ``amount``: recorded once per trade (True the
        first time). ``PAYMENT_AMOUNT_MISMATCH`` when it is not the bill's amount: nothing is recorded."""
        if amount != self.amount:
            raise Conflict(
                "the payment's amount is not the bill's",
                code=AMOUNT_MISMATCH,
                details={"billAmount": f"{self.amount:.2f}", "paidAmount": f"{amount:.2f}"},
            )
        if trade_no in self.payments:
            return False
        self._payment_notified(
            pay_bill_id=self.pay_bill_id,
            user_id=self.user_id,
            program_id=self.program_id,
            channel=self.channel,
            trade_no=trade_no,
            amount=amount,
            paid_at=paid_at,
            source=source,
        )
        return True

    @event("PaymentNotified")
    def _payment_notified(
        self,
        pay_bill_id: int,
        user_id: int,
        program_id: int,
        channel: str,
        trade_no: str,
        amount: Decimal,
        paid_at: datetime,
        source: PaymentSource,
    ) -> None:
        self.payments[trade_no] = paid_at

    def record_refund(self, trade_no: str, refund_number: str, amount: Decimal, refunded_at: datetime) -> None:
        """The provider gave ``amount`` of ``trade_no`` back under ``refund_number`` (once)."""
        if refund_number in self.refunded:
            return
        self._refund_succeeded(
            pay_bill_id=self.pay_bill_id,
            trade_no=trade_no,
            refund_number=refund_number,
            amount=amount,
            refunded_at=refunded_at,
        )

    @event("RefundSucceeded")
    def _refund_succeeded(
        self, pay_bill_id: int, trade_no: str, refund_number: str, amount: Decimal, refunded_at: datetime
    ) -> None:
        self.refunded[refund_number] = amount

    def record_refund_failure(
        self, trade_no: str, refund_number: str, amount: Decimal, error: str, retry_at: datetime
    ) -> int:
        """The provider did not carry the refund out; returns the attempt's number (it is retried)."""
        attempt = self.failed_attempts.get(refund_number, 0) + 1
        self._refund_failed(
            pay_bill_id=self.pay_bill_id,
            trade_no=trade_no,
            refund_number=refund_number,
            amount=amount,
            attempt=attempt,
            error=error[:500],
            retry_at=retry_at,
        )
        return attempt

    @event("RefundFailed")
    def _refund_failed(
        self,
        pay_bill_id: int,
        trade_no: str,
        refund_number: str,
        amount: Decimal,
        attempt: int,
        error: str,
        retry_at: datetime,
    ) -> None:
        self.failed_attempts[refund_number] = attempt
