"""The sandbox's gateway: Alipay's checks of a request and the open API methods it answers
(``alipay.trade.query``, ``alipay.trade.refund``, ``alipay.trade.fastpay.refund.query``), with
the notification a trade's change sends. ``sandbox.py`` serves them over HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from infra.payments.alipay import PAGE_PAY, QUERY, REFUND, REFUND_QUERY, REFUND_SUCCESS
from infra.payments.alipay_wire import (
    BUSINESS_FAILED,
    CENTS,
    INVALID_ARGUMENTS,
    INVALID_PARAMETER,
    MISSING_ARGUMENTS,
    SERVICE_UNAVAILABLE,
    SUCCESS,
    alipay_time,
    yuan,
)
from infra.payments.sandbox_notices import Notifier
from infra.payments.sandbox_trades import SandboxRefund, SandboxRefusal, SandboxTrade, TradeBook
from infra.payments.signing import NOTIFICATION_UNSIGNED, sign_params, verify_params

SANDBOX_SELLER_ID = "2088000000000001"
"""The seller the sandbox names when the settings name none."""
SANDBOX_BUYER_ID = "2088000000000002"
MESSAGES = {
    SUCCESS: "Success",
    SERVICE_UNAVAILABLE: "Service Currently Unavailable",
    MISSING_ARGUMENTS: "Missing Required Arguments",
    INVALID_ARGUMENTS: "Invalid Arguments",
    BUSINESS_FAILED: "Business Failed",
}
REQUIRED_PARAMS = ("app_id", "method", "charset", "sign_type", "sign", "timestamp", "version", "biz_content")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _answer(code: str, sub_code: str = "", sub_msg: str = "", **fields: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"code": code, "msg": MESSAGES[code]}
    if sub_code:
        content |= {"sub_code": sub_code, "sub_msg": sub_msg}
    return content | fields


@dataclass
class Sandbox:
    app_id: str
    seller_id: str
    app_public: rsa.RSAPublicKey
    alipay_private: rsa.RSAPrivateKey
    notifier: Notifier
    book: TradeBook = field(default_factory=TradeBook)

    def check_request(self, params: dict[str, str]) -> dict[str, Any] | None:
        """Alipay's answer to a request it will not run (in its order of checks), or None."""
        missing = [name for name in REQUIRED_PARAMS if not params.get(name)]
        if missing:
            return _answer(MISSING_ARGUMENTS, f"isv.missing-{missing[0].replace('_', '-')}", f"缺少参数 {missing[0]}")
        if params["app_id"] != self.app_id:
            return _answer(INVALID_ARGUMENTS, "isv.invalid-app-id", "无效的AppID参数")
        if params["sign_type"] != "RSA2":
            return _answer(INVALID_ARGUMENTS, "isv.invalid-signature-type", "无效的签名类型")
        if not verify_params(params, self.app_public):
            return _answer(INVALID_ARGUMENTS, "isv.invalid-signature", "验签出错")
        if params["method"] not in (PAGE_PAY, *API_METHODS):
            return _answer(INVALID_ARGUMENTS, "isv.invalid-method", "不存在的方法名")
        try:
            biz = json.loads(params["biz_content"])
        except ValueError:
            biz = None
        if not isinstance(biz, dict) or not isinstance(biz.get("out_trade_no"), str):
            return _answer(INVALID_ARGUMENTS, "isv.invalid-parameter", "biz_content 无效")
        return None

    def notification(self, trade: SandboxTrade, now: datetime, refund: SandboxRefund | None = None) -> dict[str, str]:
        """The signed form Alipay posts when a trade changes (paid, or refunded)."""
        form = {
            "notify_time": alipay_time(now),
            "notify_type": "trade_status_sync",
            "notify_id": uuid.uuid4().hex,
            "app_id": self.app_id,
            "charset": "utf-8",
            "version": "1.0",
            "sign_type": "RSA2",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "trade_status": trade.status.value,
            "total_amount": yuan(trade.amount),
            "receipt_amount": yuan(trade.amount),
            "buyer_pay_amount": yuan(trade.amount),
            "subject": trade.subject,
            "gmt_create": alipay_time(trade.created_at),
            "gmt_payment": alipay_time(trade.paid_at or now),
            "seller_id": self.seller_id,
            "buyer_id": SANDBOX_BUYER_ID,
        }
        if refund is not None:
            form |= {
                "out_biz_no": refund.out_request_no,
                "refund_fee": yuan(trade.refunded),
                "gmt_refund": alipay_time(refund.refunded_at),
            }
        form["sign"] = sign_params(form, self.alipay_private, NOTIFICATION_UNSIGNED)
        return form

    def notify(self, trade: SandboxTrade, now: datetime, refund: SandboxRefund | None = None) -> None:
        if trade.notify_url:
            self.notifier.notify(trade, self.notification(trade, now, refund))


# -- the open API's methods ---------------------------------------------------------------------


def _query(sandbox: Sandbox, biz: dict[str, Any], now: datetime) -> dict[str, Any]:
    if sandbox.notifier.faults.take("fail_query", biz["out_trade_no"]):
        return _answer(SERVICE_UNAVAILABLE, "isp.unknow-error", "系统繁忙")
    trade = sandbox.book.get(biz["out_trade_no"], now)
    paid = {"send_pay_date": alipay_time(trade.paid_at)} if trade.paid_at else {}
    return _answer(
        SUCCESS,
        out_trade_no=trade.out_trade_no,
        trade_no=trade.trade_no,
        trade_status=trade.status.value,
        total_amount=yuan(trade.amount),
        buyer_pay_amount=yuan(trade.amount) if trade.paid_at else "0.00",
        buyer_user_id=SANDBOX_BUYER_ID,
        **paid,
    )


def _refund(sandbox: Sandbox, biz: dict[str, Any], now: datetime) -> dict[str, Any]:
    out_trade_no = biz["out_trade_no"]
    if sandbox.notifier.faults.take("fail_refund", out_trade_no):
        return _answer(BUSINESS_FAILED, "ACQ.SYSTEM_ERROR", "系统错误")
    amount = parse_amount(biz.get("refund_amount"))
    out_request_no = str(biz.get("out_request_no") or out_trade_no)
    trade, refund, moved = sandbox.book.refund(
        out_trade_no, out_request_no, amount, str(biz.get("refund_reason", "")), now
    )
    if moved:
        sandbox.notify(trade, now, refund)
    return _answer(
        SUCCESS,
        trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no,
        buyer_user_id=SANDBOX_BUYER_ID,
        fund_change="Y" if moved else "N",
        refund_fee=yuan(trade.refunded),
        gmt_refund_pay=alipay_time(refund.refunded_at),
    )


def _refund_query(sandbox: Sandbox, biz: dict[str, Any], now: datetime) -> dict[str, Any]:
    out_trade_no = biz["out_trade_no"]
    if sandbox.notifier.faults.take("fail_query", out_trade_no):
        return _answer(SERVICE_UNAVAILABLE, "isp.unknow-error", "系统繁忙")
    trade = sandbox.book.get(out_trade_no, now)
    refund = trade.refunds.get(str(biz.get("out_request_no") or out_trade_no))
    if refund is None:
        return _answer(SUCCESS)
    return _answer(
        SUCCESS,
        trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no,
        out_request_no=refund.out_request_no,
        total_amount=yuan(trade.amount),
        refund_amount=yuan(refund.amount),
        refund_status=REFUND_SUCCESS,
        gmt_refund_pay=alipay_time(refund.refunded_at),
    )


API_METHODS: dict[str, Callable[[Sandbox, dict[str, Any], datetime], dict[str, Any]]] = {
    QUERY: _query,
    REFUND: _refund,
    REFUND_QUERY: _refund_query,
}


def parse_amount(value: Any) -> Decimal:
    """An amount in yuan with at most two places, as Alipay takes them."""
    try:
        amount = Decimal(str(value))
        whole_cents = amount.is_finite() and amount == amount.quantize(CENTS)
    except InvalidOperation as exc:
        raise SandboxRefusal(INVALID_PARAMETER, f"金额无效: {value!r}") from exc
    if not whole_cents:
        raise SandboxRefusal(INVALID_PARAMETER, f"金额无效: {value!r}")
    return amount


def run_method(sandbox: Sandbox, method: str, biz: dict[str, Any]) -> dict[str, Any]:
    try:
        return API_METHODS[method](sandbox, biz, utc_now())
    except SandboxRefusal as refusal:
        return _answer(BUSINESS_FAILED, refusal.sub_code, refusal.sub_msg)
