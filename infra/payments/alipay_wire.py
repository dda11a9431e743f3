"""The shape of Alipay's open API on the wire: common request parameters, its clock and amount
formats, and its signed JSON answers. Shared by the adapter and the sandbox, so the two cannot
drift apart.

An answer is ``{"<method with . as _>_response": {...}, "sign": "..."}`` (or ``error_response``
for a request Alipay could not attribute to a method). The signature covers the exact text of
the ``*_response`` value as it stands in the body, so the reader cuts that text out of the body
rather than serializing the parsed object again (key order and escapes would differ).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric import rsa

from infra.payments.signing import sign_text, verify_text

ALIPAY_TZ = ZoneInfo("Asia/Shanghai")
"""Every time Alipay reads or writes (``timestamp``, ``time_expire``, ``gmt_payment``) is local to it."""
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
CENTS = Decimal("0.01")

SUCCESS = "10000"
SERVICE_UNAVAILABLE = "20000"
MISSING_ARGUMENTS = "40001"
INVALID_ARGUMENTS = "40002"
BUSINESS_FAILED = "40004"
TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
INVALID_PARAMETER = "ACQ.INVALID_PARAMETER"

ERROR_RESPONSE = "error_response"

_JSON = json.JSONDecoder()
_BLANKS = " \t\r\n"


def alipay_time(moment: datetime) -> str:
    """``moment`` (aware) as Alipay writes times: ``YYYY-MM-DD HH:MM:SS`` in Asia/Shanghai."""
    return moment.astimezone(ALIPAY_TZ).strftime(TIME_FORMAT)


def parse_alipay_time(text: str) -> datetime:
    """An Alipay time as an aware UTC datetime; ``ValueError`` when it is not one."""
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=ALIPAY_TZ).astimezone(UTC)


def yuan(amount: Decimal) -> str:
    """An amount as Alipay takes it: yuan with two places (``12.30``)."""
    return str(amount.quantize(CENTS))


def request_params(
    app_id: str, method: str, biz_content: Mapping[str, Any], now: datetime, **extra: str
) -> dict[str, str]:
    """A request's parameters before signing (``extra``: ``notify_url``, ``return_url``, ...)."""
    return {
        "app_id": app_id,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": alipay_time(now),
        "version": "1.0",
        **{key: value for key, value in extra.items() if value},
        "biz_content": json.dumps(biz_content, ensure_ascii=False, separators=(",", ":")),
    }


def response_key(method: str) -> str:
    """``alipay.trade.query`` → ``alipay_trade_query_response``."""
    return method.replace(".", "_") + "_response"


def signed_answer(key_name: str, content: Mapping[str, Any], key: rsa.RSAPrivateKey) -> str:
    """The body of an answer, its ``key_name`` value signed as written."""
    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return f'{{{json.dumps(key_name)}:{text},"sign":{json.dumps(sign_text(text, key))}}}'


@dataclass(frozen=True)
class Answer:
    content: dict[str, Any]
    signed: bool
    """Whether the answer carried a signature that verifies over the value's text."""

    @property
    def code(self) -> str:
        return str(self.content.get("code", ""))

    @property
    def sub_code(self) -> str:
        return str(self.content.get("sub_code", ""))


def read_answer(body: str, method: str, key: rsa.RSAPublicKey) -> Answer:
    """The ``method``'s answer (or the ``error_response``) in ``body``, and whether it is signed.

    ``ValueError`` when the body is not such an answer."""
    members = _top_level_members(body)
    for name in (response_key(method), ERROR_RESPONSE):
        if name in members:
            start, end = members[name]
            raw = body[start:end]
            content = json.loads(raw)
            if not isinstance(content, dict):
                raise ValueError(f"{name} is not an object")
            signature = _sign_member(body, members)
            return Answer(content, signed=bool(signature) and verify_text(raw, signature, key))
    raise ValueError(f"no {response_key(method)} in the answer")


def _sign_member(body: str, members: Mapping[str, tuple[int, int]]) -> str:
    if "sign" not in members:
        return ""
    start, end = members["sign"]
    value = json.loads(body[start:end])
    return value if isinstance(value, str) else ""


def _top_level_members(body: str) -> dict[str, tuple[int, int]]:
    """Where each top-level member's value stands in ``body``: name → (start, end)."""
    members: dict[str, tuple[int, int]] = {}
    at = _skip_blanks(body, 0)
    if body[at : at + 1] != "{":
        raise ValueError("the answer is not a JSON object")
    at = _skip_blanks(body, at + 1)
    if body[at : at + 1] == "}":
        return members
    while True:
        name, at = _JSON.raw_decode(body, at)
        at = _skip_blanks(body, at)
        if not isinstance(name, str) or body[at : at + 1] != ":":
            raise ValueError("the answer is not a JSON object")
        start = _skip_blanks(body, at + 1)
        _, end = _JSON.raw_decode(body, start)
        members[name] = (start, end)
        at = _skip_blanks(body, end)
        if body[at : at + 1] == "}":
            return members
        if body[at : at + 1] != ",":
            raise ValueError("the answer is not a JSON object")
        at = _skip_blanks(body, at + 1)


def _skip_blanks(body: str, at: int) -> int:
    while at < len(body) and body[at] in _BLANKS:
        at += 1
    return at
