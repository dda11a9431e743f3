"""The Alipay channel: ``PaymentProvider`` over Alipay's open API, by its documented protocol.

Requests are form posts to the gateway signed with the app's private key (RSA2, see
``signing.py``); answers and asynchronous notifications are signed by Alipay and checked with its
public key. Only a signed answer is acted on: an unsigned or badly signed one is treated like no
answer (``ProviderUnavailable``), so nobody between us and Alipay can say a trade was paid or
never opened.

The keys are read on first use, not at construction: the API starts before the sandbox has
written its keys, and a key file missing when a call needs it is an error naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import structlog
from cryptography.hazmat.primitives.asymmetric import rsa

from commands.ports import (
    Clock,
    PaymentRefused,
    ProviderUnavailable,
    RefundResult,
    Trade,
    TradeRequest,
    TradeStatus,
)
from infra.payments.alipay_wire import (
    BUSINESS_FAILED,
    SUCCESS,
    TRADE_NOT_EXIST,
    Answer,
    alipay_time,
    parse_alipay_time,
    read_answer,
    request_params,
    yuan,
)
from infra.payments.sandbox_keys import alipay_public_key_path, app_private_key_path
from infra.payments.signing import (
    NOTIFICATION_UNSIGNED,
    KeyFileMissing,
    load_private_key,
    load_public_key,
    sign_params,
    verify_params,
)
from infra.settings import AlipaySettings

log = structlog.get_logger(__name__)

CHANNEL = "alipay"
PAGE_PAY = "alipay.trade.page.pay"
QUERY = "alipay.trade.query"
REFUND = "alipay.trade.refund"
REFUND_QUERY = "alipay.trade.fastpay.refund.query"
PAGE_PAY_PRODUCT = "FAST_INSTANT_TRADE_PAY"
REFUND_SUCCESS = "REFUND_SUCCESS"
FUNDS_MOVED = "Y"
NOTIFICATION_FIELDS = ("out_trade_no", "trade_no", "trade_status", "total_amount")


class AlipayAnswerError(ProviderUnavailable):
    """Alipay answered a call with an error (``alipay_code``/``sub_code`` as it sent them)."""

    def __init__(self, method: str, answer: Answer) -> None:
        super().__init__(f"{method} answered {answer.code} {answer.sub_code}: {answer.content.get('sub_msg', '')}")
        self.alipay_code = answer.code
        self.sub_code = answer.sub_code


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AlipayProvider:
    """``PaymentProvider`` for Alipay (or the sandbox, which speaks the same protocol)."""

    channel = CHANNEL

    def __init__(
        self,
        settings: AlipaySettings,
        state_dir: Path,
        clock: Clock = _utc_now,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._app_key_path = Path(settings.app_private_key_file or app_private_key_path(state_dir))
        self._alipay_key_path = Path(settings.alipay_public_key_file or alipay_public_key_path(state_dir))
        self._app_key: rsa.RSAPrivateKey | None = None
        self._alipay_key: rsa.RSAPublicKey | None = None
        self._client = client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def pay_url(self, trade: TradeRequest) -> str:
        """The gateway URL of a signed ``alipay.trade.page.pay``: opening it shows the cashier."""
        biz = {
            "out_trade_no": trade.out_trade_no,
            "product_code": PAGE_PAY_PRODUCT,
            "total_amount": yuan(trade.amount),
            "subject": trade.subject,
            "time_expire": alipay_time(trade.timeout_at),
        }
        params = self._signed(PAGE_PAY, biz, notify_url=self._settings.notify_url, return_url=self._settings.return_url)
        gateway = self._settings.gateway
        return f"{gateway}{'&' if '?' in gateway else '?'}{urlencode(params)}"

    def verify_notification(self, form: Mapping[str, str]) -> Trade:
        if not verify_params(form, self._alipay_public(), NOTIFICATION_UNSIGNED):
            raise PaymentRefused("signature", "the notification's signature does not verify with Alipay's key")
        if form.get("app_id") != self._settings.app_id:
            raise PaymentRefused("app_id", f"the notification names app {form.get('app_id')!r}")
        if self._settings.seller_id and form.get("seller_id") != self._settings.seller_id:
            raise PaymentRefused("seller_id", f"the notification names seller {form.get('seller_id')!r}")
        missing = [field for field in NOTIFICATION_FIELDS if not form.get(field)]
        if missing:
            raise PaymentRefused("malformed", f"the notification lacks {', '.join(missing)}")
        try:
            return _trade(form, paid_at_field="gmt_payment")
        except ValueError as exc:
            raise PaymentRefused("malformed", f"the notification does not read: {exc}") from exc

    async def query_trade(self, out_trade_no: str) -> Trade:
        answer = await self._call(QUERY, {"out_trade_no": out_trade_no})
        if _no_such_trade(answer):
            return Trade(out_trade_no, "", TradeStatus.UNKNOWN, Decimal(0), None)
        try:
            return _trade(answer.content, paid_at_field="send_pay_date")
        except ValueError as exc:
            raise ProviderUnavailable(f"{QUERY} answered a trade that does not read: {exc}") from exc

    async def refund(self, out_trade_no: str, out_request_no: str, amount: Decimal, reason: str) -> RefundResult:
        """Refund ``amount``. Alipay says ``fund_change`` Y when this call moved the money; a
        repeated request that had already gone through answers success with N, as does one still
        under way, so an N is confirmed by a refund query.

        ``amount`` of the result is this refund's (Alipay's ``refund_fee`` is the trade's total
        refunded so far)."""
        biz = {
            "out_trade_no": out_trade_no,
            "refund_amount": yuan(amount),
            "out_request_no": out_request_no,
            "refund_reason": reason,
        }
        answer = await self._call(REFUND, biz)
        if _no_such_trade(answer):
            raise AlipayAnswerError(REFUND, answer)
        if answer.content.get("fund_change") != FUNDS_MOVED:
            return await self.query_refund(out_trade_no, out_request_no)
        try:
            refunded_at = _optional_time(answer.content, "gmt_refund_pay")
        except ValueError as exc:
            raise ProviderUnavailable(f"{REFUND} answered a time that does not read: {exc}") from exc
        return RefundResult(out_trade_no, out_request_no, True, amount, refunded_at)

    async def query_refund(self, out_trade_no: str, out_request_no: str) -> RefundResult:
        """Alipay answers a refund it has with its data (``refund_status`` REFUND_SUCCESS, or no
        status at all from older accounts) and one it has not with a bare success."""
        biz = {"out_trade_no": out_trade_no, "out_request_no": out_request_no, "query_options": ["gmt_refund_pay"]}
        answer = await self._call(REFUND_QUERY, biz)
        content = answer.content
        status = content.get("refund_status")
        refunded = not _no_such_trade(answer) and (
            status == REFUND_SUCCESS or (status is None and "refund_amount" in content)
        )
        if not refunded:
            return RefundResult(out_trade_no, out_request_no, False, Decimal(0), None)
        try:
            amount = _amount(str(content.get("refund_amount", "0")))
            refunded_at = _optional_time(content, "gmt_refund_pay")
        except ValueError as exc:
            raise ProviderUnavailable(f"{REFUND_QUERY} answered a refund that does not read: {exc}") from exc
        return RefundResult(out_trade_no, out_request_no, True, amount, refunded_at)

    async def _call(self, method: str, biz: Mapping[str, Any]) -> Answer:
        """Post a signed request; the signed answer when it is a success or "no such trade"."""
        params = self._signed(method, biz)
        try:
            response = await self._http().post(self._settings.gateway, data=params)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{method}: {exc!r}") from exc
        if response.status_code != httpx.codes.OK:
            raise ProviderUnavailable(f"{method}: the gateway answered HTTP {response.status_code}")
        try:
            answer = read_answer(response.content.decode("utf-8"), method, self._alipay_public())
        except ValueError as exc:
            raise ProviderUnavailable(f"{method}: the answer does not read: {exc}") from exc
        if answer.code != SUCCESS and not _no_such_trade(answer):
            raise AlipayAnswerError(method, answer)
        if not answer.signed:
            log.warning("alipay_answer_unsigned", method=method, code=answer.code)
            raise ProviderUnavailable(f"{method}: the answer's signature does not verify with Alipay's key")
        return answer

    def _signed(self, method: str, biz: Mapping[str, Any], **extra: str) -> dict[str, str]:
        params = request_params(self._settings.app_id, method, biz, self._clock(), **extra)
        params["sign"] = sign_params(params, self._app_private())
        return params

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._settings.timeout_s)
        return self._client

    def _app_private(self) -> rsa.RSAPrivateKey:
        if self._app_key is None:
            try:
                self._app_key = load_private_key(self._app_key_path)
            except KeyFileMissing as exc:
                raise _key_missing(exc) from exc
        return self._app_key

    def _alipay_public(self) -> rsa.RSAPublicKey:
        if self._alipay_key is None:
            try:
                self._alipay_key = load_public_key(self._alipay_key_path)
            except KeyFileMissing as exc:
                raise _key_missing(exc) from exc
        return self._alipay_key


def _key_missing(exc: KeyFileMissing) -> ProviderUnavailable:
    """Until the key is there no call can be signed or checked: the caller retries, as for an outage
    (Alipay retries its notification; the sandbox writes its keys when it starts)."""
    log.error("alipay_key_missing", error=str(exc))
    return ProviderUnavailable(f"Alipay channel not ready: {exc}")


def _no_such_trade(answer: Answer) -> bool:
    return answer.code == BUSINESS_FAILED and answer.sub_code == TRADE_NOT_EXIST


def _trade(fields: Mapping[str, Any], paid_at_field: str) -> Trade:
    """A trade from a notification's form or a query's answer; ``ValueError`` when it does not read."""
    status = TradeStatus(str(fields.get("trade_status", "")))
    if status is TradeStatus.UNKNOWN:
        raise ValueError("trade_status UNKNOWN is ours, not Alipay's")
    if not fields.get("out_trade_no"):
        raise ValueError("no out_trade_no")
    return Trade(
        out_trade_no=str(fields["out_trade_no"]),
        trade_no=str(fields.get("trade_no", "")),
        status=status,
        amount=_amount(str(fields.get("total_amount", ""))),
        paid_at=_optional_time(fields, paid_at_field),
    )


def _amount(text: str) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"amount {text!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"amount {text!r}")
    return amount


def _optional_time(fields: Mapping[str, Any], name: str) -> datetime | None:
    text = fields.get(name)
    return parse_alipay_time(str(text)) if text else None
