"""Alipay's RSA2 signing rule, checked against its documented form and a second implementation
(the ``openssl`` command line), and the adapter's checks of a notification."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from commands.ports import PaymentRefused, ProviderUnavailable, TradeRequest, TradeStatus
from infra.payments.alipay import AlipayProvider
from infra.payments.alipay_wire import read_answer, signed_answer
from infra.payments.signing import (
    NOTIFICATION_UNSIGNED,
    load_private_key,
    load_public_key,
    sign_params,
    sign_text,
    signing_string,
    verify_params,
    verify_text,
)
from infra.settings import AlipaySettings

KEYS = Path(__file__).parent.parent / "data" / "alipay"
APP_ID = "2021000000000001"
SELLER_ID = "2088000000000001"


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return load_private_key(KEYS / "private.pem")


@pytest.fixture(scope="module")
def public_key() -> rsa.RSAPublicKey:
    return load_public_key(KEYS / "public.pem")


def provider(tmp_path: Path, seller_id: str = SELLER_ID) -> AlipayProvider:
    """The adapter with the test pair as both the app's key and Alipay's."""
    settings = AlipaySettings(
        app_id=APP_ID,
        seller_id=seller_id,
        gateway="http://127.0.0.1:9/gateway.do",
        app_private_key_file=str(KEYS / "private.pem"),
        alipay_public_key_file=str(KEYS / "public.pem"),
        notify_url="http://127.0.0.1:8000/api/v1/payments/alipay/notify",
    )
    return AlipayProvider(settings, tmp_path)


def notification(key: rsa.RSAPrivateKey, **changes: str) -> dict[str, str]:
    form = {
        "notify_time": "2026-05-10 12:00:05",
        "notify_type": "trade_status_sync",
        "notify_id": "ac05099524730693a8b330c5ecf72da9786",
        "app_id": APP_ID,
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "trade_no": "2026051022001400000000000001",
        "out_trade_no": "100000000000001",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "12.30",
        "subject": "周杰伦演唱会 内场 A 区",
        "gmt_create": "2026-05-10 11:59:00",
        "gmt_payment": "2026-05-10 12:00:01",
        "seller_id": SELLER_ID,
        **changes,
    }
    form["sign"] = sign_params(form, key, NOTIFICATION_UNSIGNED)
    return form


# -- the string to sign -------------------------------------------------------------------------


def test_signing_string_sorts_keys_and_drops_empty_values():
    params = {"b": "2", "a": "1", "c": "", "sign": "xyz", "A": "0"}

    assert signing_string(params) == "A=0&a=1&b=2"


def test_signing_string_keeps_values_as_they_are_when_they_need_url_encoding():
    params = {"notify_url": "http://h/p?x=1&y=2", "subject": "演唱会 A&B", "biz_content": '{"k":"v w"}'}

    assert signing_string(params) == 'biz_content={"k":"v w"}&notify_url=http://h/p?x=1&y=2&subject=演唱会 A&B'


def test_signing_string_of_a_request_keeps_sign_type():
    assert signing_string({"sign_type": "RSA2", "sign": "s", "app_id": "1"}) == "app_id=1&sign_type=RSA2"


def test_signing_string_of_a_notification_leaves_out_sign_and_sign_type():
    params = {"sign_type": "RSA2", "sign": "s", "app_id": "1"}

    assert signing_string(params, NOTIFICATION_UNSIGNED) == "app_id=1"


# -- a known vector, signed by a second implementation ------------------------------------------

VECTOR = {
    "app_id": "2014072300007148",
    "method": "alipay.trade.query",
    "format": "JSON",
    "charset": "utf-8",
    "sign_type": "RSA2",
    "timestamp": "2014-07-24 03:07:50",
    "version": "1.0",
    "app_auth_token": "",
    "biz_content": '{"out_trade_no":"20150320010101001","subject":"测试 & 订单"}',
}
VECTOR_STRING = (
    'app_id=2014072300007148&biz_content={"out_trade_no":"20150320010101001","subject":"测试 & 订单"}'
    "&charset=utf-8&format=JSON&method=alipay.trade.query&sign_type=RSA2&timestamp=2014-07-24 03:07:50"
    "&version=1.0"
)


def test_signing_string_of_the_known_vector_is_the_documented_one():
    assert signing_string(VECTOR) == VECTOR_STRING


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line")
def test_signature_of_the_known_vector_equals_the_one_openssl_makes(private_key, tmp_path):
    text = tmp_path / "vector.txt"
    text.write_bytes(VECTOR_STRING.encode("utf-8"))
    openssl = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(KEYS / "private.pem"), str(text)],
        check=True,
        capture_output=True,
    )

    assert sign_params(VECTOR, private_key) == base64.b64encode(openssl.stdout).decode("ascii")


def test_signature_verifies_with_the_public_key_and_not_after_a_change(private_key, public_key):
    signature = sign_text(VECTOR_STRING, private_key)

    assert verify_text(VECTOR_STRING, signature, public_key)
    assert not verify_text(VECTOR_STRING.replace("20150320010101001", "20150320010101002"), signature, public_key)
    assert not verify_text(VECTOR_STRING, "not base64!", public_key)


def test_verify_params_is_false_when_the_signature_is_missing(public_key):
    assert not verify_params(dict(VECTOR), public_key)


# -- answers: the signature covers the value's text as sent --------------------------------------


def test_answer_signature_verifies_over_the_raw_text_whatever_its_spacing_and_escapes(private_key, public_key):
    raw = '{ "msg" : "Success","code":"10000", "subject":"\\u6f14\\u5531\\u4f1a\\/A" }'
    body = f'{{"alipay_trade_query_response":{raw},\n "sign" : "{sign_text(raw, private_key)}"}}'

    answer = read_answer(body, "alipay.trade.query", public_key)

    assert answer.signed
    assert answer.code == "10000"
    assert answer.content["subject"] == "演唱会/A"


def test_answer_written_by_signed_answer_reads_back_signed(private_key, public_key):
    body = signed_answer("alipay_trade_refund_response", {"code": "10000", "fund_change": "Y"}, private_key)

    answer = read_answer(body, "alipay.trade.refund", public_key)

    assert answer.signed and answer.content == {"code": "10000", "fund_change": "Y"}


def test_answer_with_a_changed_value_is_not_signed(private_key, public_key):
    body = signed_answer(
        "alipay_trade_query_response", {"code": "10000", "trade_status": "WAIT_BUYER_PAY"}, private_key
    )

    answer = read_answer(body.replace("WAIT_BUYER_PAY", "TRADE_SUCCESS"), "alipay.trade.query", public_key)

    assert not answer.signed


# -- the adapter ---------------------------------------------------------------------------------


def test_notification_signed_by_alipay_reads_as_the_trade(private_key, tmp_path):
    trade = provider(tmp_path).verify_notification(notification(private_key))

    assert trade.out_trade_no == "100000000000001"
    assert trade.trade_no == "2026051022001400000000000001"
    assert trade.status is TradeStatus.PAID
    assert trade.amount == Decimal("12.30")
    assert trade.paid_at == datetime(2026, 5, 10, 4, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize("field", ["total_amount", "trade_status", "out_trade_no", "gmt_payment"])
def test_notification_is_refused_for_its_signature_when_a_field_was_changed(private_key, tmp_path, field):
    form = notification(private_key)
    form[field] = {"total_amount": "0.01", "trade_status": "TRADE_FINISHED"}.get(field, "2026-05-10 12:00:02")

    with pytest.raises(PaymentRefused) as refused:
        provider(tmp_path).verify_notification(form)

    assert refused.value.reason == "signature"


def test_notification_is_refused_for_its_signature_when_signed_by_another_key(tmp_path):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    with pytest.raises(PaymentRefused) as refused:
        provider(tmp_path).verify_notification(notification(other))

    assert refused.value.reason == "signature"


def test_notification_is_refused_for_its_signature_when_it_has_none(private_key, tmp_path):
    form = notification(private_key)
    del form["sign"]

    with pytest.raises(PaymentRefused) as refused:
        provider(tmp_path).verify_notification(form)

    assert refused.value.reason == "signature"


def test_notification_is_refused_when_it_names_another_app(private_key, tmp_path):
    with pytest.raises(PaymentRefused) as refused:
        provider(tmp_path).verify_notification(notification(private_key, app_id="2021000000009999"))

    assert refused.value.reason == "app_id"


def test_notification_is_refused_when_it_names_another_seller(private_key, tmp_path):
    with pytest.raises(PaymentRefused) as refused:
        provider(tmp_path).verify_notification(notification(private_key, seller_id="2088000000009999"))

    assert refused.value.reason == "seller_id"


def test_notification_names_any_seller_when_none_is_configured(private_key, tmp_path):
    form = notification(private_key, seller_id="2088000000009999")

    assert provider(tmp_path, seller_id="").verify_notification(form).status is TradeStatus.PAID


@pytest.mark.parametrize("field", ["out_trade_no", "trade_no", "trade_status", "total_amount"])
def test_notification_is_refused_as_malformed_when_a_field_is_missing(private_key, tmp_path, field):
    with pytest.raises(PaymentRefused) as refused:
        provider(tmp_path).verify_notification(notification(private_key, **{field: ""}))

    assert refused.value.reason == "malformed"


@pytest.mark.parametrize(
    "changes", [{"total_amount": "12.3.0"}, {"trade_status": "PAID"}, {"gmt_payment": "yesterday"}]
)
def test_notification_is_refused_as_malformed_when_a_field_does_not_read(private_key, tmp_path, changes):
    with pytest.raises(PaymentRefused) as refused:
        provider(tmp_path).verify_notification(notification(private_key, **changes))

    assert refused.value.reason == "malformed"


def test_notification_sign_type_is_not_part_of_what_alipay_signs(private_key, tmp_path):
    form = notification(private_key)
    form["sign_type"] = "RSA"

    assert provider(tmp_path).verify_notification(form).status is TradeStatus.PAID


def test_pay_url_is_a_signed_page_pay_request_in_alipay_time(public_key, tmp_path):
    trade = TradeRequest("100000000000001", Decimal("12.3"), "内场 A 区", datetime(2026, 5, 10, 4, 15, tzinfo=UTC))

    url = provider(tmp_path).pay_url(trade)

    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    biz = json.loads(params["biz_content"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "http://127.0.0.1:9/gateway.do"
    assert verify_params(params, public_key)
    assert params["method"] == "alipay.trade.page.pay"
    assert params["sign_type"] == "RSA2"
    assert params["notify_url"] == "http://127.0.0.1:8000/api/v1/payments/alipay/notify"
    assert "return_url" not in params
    assert datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S")
    assert biz == {
        "out_trade_no": "100000000000001",
        "product_code": "FAST_INSTANT_TRADE_PAY",
        "total_amount": "12.30",
        "subject": "内场 A 区",
        "time_expire": "2026-05-10 12:15:00",
    }


def test_provider_starts_without_its_keys_and_says_which_is_missing_when_used(tmp_path):
    sandbox_keys = AlipayProvider(AlipaySettings(), tmp_path)
    trade = TradeRequest("1", Decimal(1), "s", datetime(2026, 5, 10, tzinfo=UTC))

    with pytest.raises(ProviderUnavailable, match=r"app_private\.pem"):
        sandbox_keys.pay_url(trade)
    with pytest.raises(ProviderUnavailable, match=r"alipay_public\.pem"):
        sandbox_keys.verify_notification({"sign": "x"})
