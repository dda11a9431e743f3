"""The sandbox provider's trades and refunds, with Alipay's rules for them.

They live in process memory: the sandbox is for development and tests, and a restart forgets
every trade (a query then answers "no such trade", as Alipay does for a page nobody opened).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from commands.ports import TradeStatus
from infra.payments.alipay_wire import ALIPAY_TZ, INVALID_PARAMETER, TRADE_NOT_EXIST, yuan

TRADE_NO_RANDOM_DIGITS = 16


class SandboxRefusal(Exception):
    """What Alipay would refuse, with its ``sub_code`` (``ACQ.TRADE_STATUS_ERROR``, ...)."""

    def __init__(self, sub_code: str, sub_msg: str) -> None:
        super().__init__(f"{sub_code}: {sub_msg}")
        self.sub_code = sub_code
        self.sub_msg = sub_msg


@dataclass
class SandboxRefund:
    out_request_no: str
    amount: Decimal
    reason: str
    refunded_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "outRequestNo": self.out_request_no,
            "amount": yuan(self.amount),
            "reason": self.reason,
            "refundedAt": self.refunded_at.isoformat(),
        }


@dataclass
class Delivery:
    """One notification and what became of it: ``pending``, ``held`` (reorder), ``dropped``,
    ``delivered`` (an answer was ``success``) or ``given_up`` (every attempt failed)."""

    notify_id: str
    trade_status: str
    fate: str = "pending"
    answers: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "notifyId": self.notify_id,
            "tradeStatus": self.trade_status,
            "fate": self.fate,
            "answers": self.answers,
        }


@dataclass
class SandboxTrade:
    out_trade_no: str
    amount: Decimal
    subject: str
    notify_url: str
    return_url: str
    time_expire: datetime | None
    created_at: datetime
    status: TradeStatus = TradeStatus.WAITING
    trade_no: str = ""
    paid_at: datetime | None = None
    refunds: dict[str, SandboxRefund] = field(default_factory=dict)
    notifications: list[Delivery] = field(default_factory=list)

    @property
    def refunded(self) -> Decimal:
        return sum((refund.amount for refund in self.refunds.values()), Decimal(0))

    def as_json(self) -> dict[str, Any]:
        return {
            "outTradeNo": self.out_trade_no,
            "tradeNo": self.trade_no,
            "status": self.status.value,
            "amount": yuan(self.amount),
            "subject": self.subject,
            "notifyUrl": self.notify_url,
            "timeExpire": self.time_expire.isoformat() if self.time_expire else None,
            "paidAt": self.paid_at.isoformat() if self.paid_at else None,
            "refunded": yuan(self.refunded),
            "refunds": [refund.as_json() for refund in self.refunds.values()],
            "notifications": [delivery.as_json() for delivery in self.notifications],
        }


class TradeBook:
    """Every trade the sandbox was asked to open, by ``out_trade_no``."""

    def __init__(self) -> None:
        self._trades: dict[str, SandboxTrade] = {}

    def open(
        self,
        out_trade_no: str,
        amount: Decimal,
        subject: str,
        notify_url: str,
        return_url: str,
        time_expire: datetime | None,
        now: datetime,
    ) -> SandboxTrade:
        """The trade of that number: opening it again for the same amount finds the same trade."""
        trade = self.find(out_trade_no, now)
        if trade is not None:
            if trade.amount != amount:
                raise SandboxRefusal("ACQ.CONTEXT_INCONSISTENT", "the trade exists with another amount")
            return trade
        trade = SandboxTrade(out_trade_no, amount, subject, notify_url, return_url, time_expire, now)
        self._trades[out_trade_no] = trade
        return trade

    def find(self, out_trade_no: str, now: datetime) -> SandboxTrade | None:
        """The trade, closed first if its time ran out unpaid."""
        trade = self._trades.get(out_trade_no)
        if (
            trade is not None
            and trade.status is TradeStatus.WAITING
            and trade.time_expire is not None
            and now >= trade.time_expire
        ):
            trade.status = TradeStatus.CLOSED
        return trade

    def get(self, out_trade_no: str, now: datetime) -> SandboxTrade:
        trade = self.find(out_trade_no, now)
        if trade is None:
            raise SandboxRefusal(TRADE_NOT_EXIST, "交易不存在")
        return trade

    def pay(self, out_trade_no: str, amount: Decimal | None, now: datetime) -> SandboxTrade:
        """The buyer pays (``amount``: what the buyer paid, the trade's unless a test says otherwise,
        to see the channel's amount check at work)."""
        trade = self.get(out_trade_no, now)
        if trade.status is TradeStatus.CLOSED:
            raise SandboxRefusal("ACQ.TRADE_HAS_CLOSE", "交易已关闭")
        if trade.status is not TradeStatus.WAITING:
            raise SandboxRefusal("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
        trade.amount = trade.amount if amount is None else amount
        trade.status = TradeStatus.PAID
        trade.trade_no = _trade_no(now)
        trade.paid_at = now
        return trade

    def refund(
        self, out_trade_no: str, out_request_no: str, amount: Decimal, reason: str, now: datetime
    ) -> tuple[SandboxTrade, SandboxRefund, bool]:
        """The refund of that number and whether this call moved the money (Alipay's
        ``fund_change``): asking again with the same number refunds once."""
        trade = self.get(out_trade_no, now)
        known = trade.refunds.get(out_request_no)
        if known is not None:
            if known.amount != amount:
                raise SandboxRefusal(INVALID_PARAMETER, "退款请求号已使用,金额不一致")
            return trade, known, False
        if not trade.status.paid:
            raise SandboxRefusal("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        if amount <= 0 or trade.refunded + amount > trade.amount:
            raise SandboxRefusal("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
        refund = SandboxRefund(out_request_no, amount, reason, now)
        trade.refunds[out_request_no] = refund
        if trade.refunded == trade.amount:
            trade.status = TradeStatus.CLOSED
        return trade, refund, True


def _trade_no(now: datetime) -> str:
    """A trade number shaped like Alipay's: the date, then digits (28 in all)."""
    digits = "".join(secrets.choice("0123456789") for _ in range(TRADE_NO_RANDOM_DIGITS))
    return f"{now.astimezone(ALIPAY_TZ):%Y%m%d}2200{digits}"
