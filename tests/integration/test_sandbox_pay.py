"""The Alipay adapter against the sandbox provider, both for real: the sandbox runs as its own
process on loopback and posts its notifications to a receiver in this test."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import pytest_asyncio

from commands.ports import ProviderUnavailable, TradeRequest, TradeStatus
from infra.payments.alipay import AlipayAnswerError, AlipayProvider
from infra.settings import AlipaySettings, get_settings
from tests.processes import Child, eventually, free_port, wait_until

KEYS = Path(__file__).parent.parent / "data" / "alipay"
SETTLE_S = 0.5
"""How long a test waits to be sure a notification is not coming."""
QUICK_RETRIES = [0.05, 0.1, 0.2]


@dataclass
class Inbox:
    """The notifications the sandbox posted, and what the receiver answers them."""

    received: list[dict[str, str]] = field(default_factory=list)
    refuse: dict[str, int] = field(default_factory=dict)
    """out_trade_no → how many of its notifications to answer with something else than success."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, form: dict[str, str]) -> str:
        with self.lock:
            self.received.append(form)
            left = self.refuse.get(form.get("out_trade_no", ""), 0)
            if left:
                self.refuse[form["out_trade_no"]] = left - 1
                return "fail"
            return "success"

    def of(self, out_trade_no: str) -> list[dict[str, str]]:
        with self.lock:
            return [form for form in self.received if form.get("out_trade_no") == out_trade_no]


@dataclass
class Sandbox:
    base: str
    state_dir: Path
    inbox: Inbox
    notify_url: str


@pytest.fixture(scope="module")
def inbox_server() -> Iterator[tuple[Inbox, str]]:
    inbox = Inbox()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("utf-8")
            answer = inbox.take(dict(parse_qsl(body, keep_blank_values=True))).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield inbox, f"http://127.0.0.1:{server.server_address[1]}/notify"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, inbox_server) -> Iterator[Sandbox]:
    state_dir = tmp_path_factory.mktemp("sandbox-state")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "DAMAI_PAYMENTS__SANDBOX_PORT": str(port),
        "DAMAI_PAYMENTS__ALIPAY__GATEWAY": f"{base}/gateway.do",
        "DAMAI_STATE_DIR": str(state_dir),
    }
    child = Child(["cli.sandbox_pay"], get_settings(), state_dir / "sandbox.log", env)

    def alive() -> bool:
        if child.proc.poll() is not None:
            raise AssertionError(f"the sandbox exited early:\n{child.output()[-3000:]}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(alive, 30, "the sandbox to answer /healthz")
        inbox, notify_url = inbox_server
        yield Sandbox(base, state_dir, inbox, notify_url)
    finally:
        child.stop()


@pytest_asyncio.fixture(autouse=True)
async def quick_retries(sandbox: Sandbox) -> AsyncIterator[None]:
    await set_faults(sandbox, retry_delays_s=QUICK_RETRIES)
    yield
    (await control(sandbox, "DELETE", "/sandbox/faults")).raise_for_status()


def make_provider(sandbox: Sandbox, **changes: Any) -> AlipayProvider:
    settings = AlipaySettings(gateway=f"{sandbox.base}/gateway.do", notify_url=sandbox.notify_url, **changes)
    return AlipayProvider(settings, sandbox.state_dir)


@pytest_asyncio.fixture
async def provider(sandbox: Sandbox) -> AsyncIterator[AlipayProvider]:
    alipay = make_provider(sandbox)
    yield alipay
    await alipay.aclose()


async def control(sandbox: Sandbox, method: str, path: str, **request: Any) -> httpx.Response:
    """A call to the sandbox's own routes (the buyer's side, the faults, the trades' state)."""
    async with httpx.AsyncClient(base_url=sandbox.base) as client:
        return await client.request(method, path, **request)


async def set_faults(sandbox: Sandbox, **faults: Any) -> None:
    (await control(sandbox, "POST", "/sandbox/faults", json=faults)).raise_for_status()


def trade_request(amount: str = "380.00", expires_in: timedelta = timedelta(minutes=15)) -> TradeRequest:
    deadline = datetime.now(UTC) + expires_in
    return TradeRequest(str(uuid.uuid4().int)[:18], Decimal(amount), "周杰伦演唱会 内场", deadline)


async def open_page(provider: AlipayProvider, trade: TradeRequest) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(provider.pay_url(trade))


async def buyer_pays(sandbox: Sandbox, out_trade_no: str, **body: str) -> httpx.Response:
    return await control(sandbox, "POST", f"/sandbox/trades/{out_trade_no}/pay", json=body)


async def opened_and_paid(sandbox: Sandbox, provider: AlipayProvider, trade: TradeRequest) -> None:
    (await open_page(provider, trade)).raise_for_status()
    (await buyer_pays(sandbox, trade.out_trade_no)).raise_for_status()


async def sandbox_trade(sandbox: Sandbox, out_trade_no: str) -> dict[str, Any]:
    response = await control(sandbox, "GET", f"/sandbox/trades/{out_trade_no}")
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state


async def notifications(sandbox: Sandbox, out_trade_no: str, count: int) -> list[dict[str, str]]:
    async def arrived() -> bool:
        return len(sandbox.inbox.of(out_trade_no)) >= count

    await eventually(arrived, 10, f"{count} notification(s) of {out_trade_no}")
    return sandbox.inbox.of(out_trade_no)


# -- paying ----------------------------------------------------------------------------------------


async def test_buyer_pays_on_the_page_and_the_notification_verifies(sandbox, provider):
    trade = trade_request()

    page = await open_page(provider, trade)
    paid = await buyer_pays(sandbox, trade.out_trade_no)
    [form] = await notifications(sandbox, trade.out_trade_no, 1)

    assert page.status_code == 200 and trade.out_trade_no in page.text and "/pay" in page.text
    assert paid.status_code == 200
    reported = provider.verify_notification(form)
    assert reported.status is TradeStatus.PAID
    assert reported.amount == Decimal("380.00")
    assert reported.trade_no == paid.json()["tradeNo"]
    assert reported.paid_at is not None


async def test_buyer_pays_with_the_cashier_page_form(sandbox, provider):
    trade = trade_request()
    await open_page(provider, trade)

    paid = await control(
        sandbox,
        "POST",
        f"/sandbox/trades/{trade.out_trade_no}/pay",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )

    assert paid.status_code == 200 and "TRADE_SUCCESS" in paid.text
    await notifications(sandbox, trade.out_trade_no, 1)


async def test_query_says_paid_after_the_buyer_paid(sandbox, provider):
    trade = trade_request("12.30")
    await opened_and_paid(sandbox, provider, trade)

    reported = await provider.query_trade(trade.out_trade_no)

    assert reported.status is TradeStatus.PAID
    assert reported.amount == Decimal("12.30")
    assert reported.paid_at is not None and reported.trade_no


async def test_query_says_waiting_when_the_page_was_opened_but_not_paid(provider):
    trade = trade_request()
    await open_page(provider, trade)

    assert (await provider.query_trade(trade.out_trade_no)).status is TradeStatus.WAITING


async def test_query_says_unknown_when_nobody_opened_the_page(provider):
    assert (await provider.query_trade("404404404")).status is TradeStatus.UNKNOWN


async def test_opening_the_page_again_finds_the_same_trade(sandbox, provider):
    trade = trade_request()

    first = await open_page(provider, trade)
    again = await open_page(provider, trade)

    assert first.status_code == again.status_code == 200
    assert (await sandbox_trade(sandbox, trade.out_trade_no))["amount"] == "380.00"


async def test_opening_the_page_with_another_amount_is_refused(provider):
    trade = trade_request("100.00")
    await open_page(provider, trade)

    again = await open_page(provider, TradeRequest(trade.out_trade_no, Decimal("1.00"), "s", trade.timeout_at))

    assert again.status_code == 400 and "ACQ.CONTEXT_INCONSISTENT" in again.text


async def test_paying_after_the_deadline_is_refused_and_the_trade_is_closed(sandbox, provider):
    trade = trade_request(expires_in=timedelta(seconds=-1))
    await open_page(provider, trade)

    paid = await buyer_pays(sandbox, trade.out_trade_no)

    assert paid.status_code == 409 and paid.json()["code"] == "ACQ.TRADE_HAS_CLOSE"
    assert (await provider.query_trade(trade.out_trade_no)).status is TradeStatus.CLOSED


async def test_a_notification_answered_with_anything_but_success_is_sent_again(sandbox, provider):
    trade = trade_request()
    sandbox.inbox.refuse[trade.out_trade_no] = 2

    await opened_and_paid(sandbox, provider, trade)
    forms = await notifications(sandbox, trade.out_trade_no, 3)

    assert len({form["notify_id"] for form in forms}) == 1
    [delivery] = (await sandbox_trade(sandbox, trade.out_trade_no))["notifications"]
    assert delivery["fate"] == "delivered"
    assert [answer["body"] for answer in delivery["answers"]] == ["fail", "fail", "success"]


# -- refunds ---------------------------------------------------------------------------------------


async def test_refund_asked_twice_with_one_number_refunds_once(sandbox, provider):
    trade = trade_request("50.00")
    await opened_and_paid(sandbox, provider, trade)

    first = await provider.refund(trade.out_trade_no, "r1", Decimal("50.00"), "show cancelled")
    again = await provider.refund(trade.out_trade_no, "r1", Decimal("50.00"), "show cancelled")

    assert first.refunded and again.refunded
    assert first.amount == again.amount == Decimal("50.00")
    state = await sandbox_trade(sandbox, trade.out_trade_no)
    assert len(state["refunds"]) == 1 and state["refunded"] == "50.00"
    assert state["status"] == "TRADE_CLOSED"


async def test_query_refund_says_refunded_for_a_refund_that_went_through(sandbox, provider):
    trade = trade_request("50.00")
    await opened_and_paid(sandbox, provider, trade)
    await provider.refund(trade.out_trade_no, "r1", Decimal("20.00"), "partial")

    refunded = await provider.query_refund(trade.out_trade_no, "r1")
    never_asked = await provider.query_refund(trade.out_trade_no, "r2")

    assert refunded.refunded and refunded.amount == Decimal("20.00") and refunded.refunded_at is not None
    assert not never_asked.refunded
    assert (await provider.query_trade(trade.out_trade_no)).status is TradeStatus.PAID


async def test_a_full_refund_is_notified_as_the_trade_closing(sandbox, provider):
    trade = trade_request("50.00")
    await opened_and_paid(sandbox, provider, trade)
    await notifications(sandbox, trade.out_trade_no, 1)

    await provider.refund(trade.out_trade_no, "r1", Decimal("50.00"), "show cancelled")
    forms = await notifications(sandbox, trade.out_trade_no, 2)

    closing = provider.verify_notification(forms[-1])
    assert closing.status is TradeStatus.CLOSED
    assert forms[-1]["refund_fee"] == "50.00" and forms[-1]["out_biz_no"] == "r1"


async def test_refund_of_an_unpaid_trade_is_refused(provider):
    trade = trade_request()
    await open_page(provider, trade)

    with pytest.raises(AlipayAnswerError) as refused:
        await provider.refund(trade.out_trade_no, "r1", Decimal("1.00"), "no")

    assert refused.value.sub_code == "ACQ.TRADE_STATUS_ERROR"


async def test_refund_over_what_was_paid_is_refused(sandbox, provider):
    trade = trade_request("10.00")
    await opened_and_paid(sandbox, provider, trade)
    await provider.refund(trade.out_trade_no, "r1", Decimal("6.00"), "partial")

    with pytest.raises(AlipayAnswerError) as refused:
        await provider.refund(trade.out_trade_no, "r2", Decimal("6.00"), "partial")

    assert refused.value.sub_code == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"


# -- faults ----------------------------------------------------------------------------------------


async def test_dropped_notification_never_comes_but_the_query_says_paid(sandbox, provider):
    trade = trade_request()
    await set_faults(sandbox, drop=1, trades=[trade.out_trade_no])

    await opened_and_paid(sandbox, provider, trade)
    await provider.query_trade(trade.out_trade_no)  # a round trip after the payment
    await _settle()

    assert sandbox.inbox.of(trade.out_trade_no) == []
    assert (await sandbox_trade(sandbox, trade.out_trade_no))["notifications"][0]["fate"] == "dropped"
    assert (await provider.query_trade(trade.out_trade_no)).status is TradeStatus.PAID


async def test_a_dropped_notification_can_be_sent_again_on_demand(sandbox, provider):
    trade = trade_request()
    await set_faults(sandbox, drop=1, trades=[trade.out_trade_no])
    await opened_and_paid(sandbox, provider, trade)

    (await control(sandbox, "POST", f"/sandbox/trades/{trade.out_trade_no}/notify")).raise_for_status()
    [form] = await notifications(sandbox, trade.out_trade_no, 1)

    assert provider.verify_notification(form).status is TradeStatus.PAID


async def test_duplicated_notification_arrives_three_times_with_one_id(sandbox, provider):
    trade = trade_request()
    await set_faults(sandbox, duplicate=3, trades=[trade.out_trade_no])

    await opened_and_paid(sandbox, provider, trade)
    forms = await notifications(sandbox, trade.out_trade_no, 3)
    await _settle()

    assert len(sandbox.inbox.of(trade.out_trade_no)) == 3
    assert len({form["notify_id"] for form in forms}) == 1
    assert all(provider.verify_notification(form).status is TradeStatus.PAID for form in forms)


async def test_delayed_notification_comes_after_the_delay(sandbox, provider):
    trade = trade_request()
    await set_faults(sandbox, delay_s=SETTLE_S * 2, trades=[trade.out_trade_no])

    await opened_and_paid(sandbox, provider, trade)
    await _settle()
    early = sandbox.inbox.of(trade.out_trade_no)
    [form] = await notifications(sandbox, trade.out_trade_no, 1)

    assert early == []
    assert provider.verify_notification(form).status is TradeStatus.PAID


async def test_paying_with_another_amount_is_notified_with_that_amount(sandbox, provider):
    trade = trade_request("380.00")
    await open_page(provider, trade)

    await buyer_pays(sandbox, trade.out_trade_no, amount="0.01")
    [form] = await notifications(sandbox, trade.out_trade_no, 1)

    assert provider.verify_notification(form).amount == Decimal("0.01")


async def test_reordered_notifications_arrive_newest_first_on_release(sandbox, provider):
    first, second = trade_request(), trade_request()
    await set_faults(sandbox, reorder=True)
    await opened_and_paid(sandbox, provider, first)
    await opened_and_paid(sandbox, provider, second)
    await _settle()
    assert sandbox.inbox.of(first.out_trade_no) == sandbox.inbox.of(second.out_trade_no) == []

    (await control(sandbox, "POST", "/sandbox/faults/release")).raise_for_status()
    await notifications(sandbox, first.out_trade_no, 1)
    await notifications(sandbox, second.out_trade_no, 1)

    order = [form["out_trade_no"] for form in sandbox.inbox.received]
    assert order.index(second.out_trade_no) < order.index(first.out_trade_no)


async def test_failed_refund_refunds_nothing_and_the_retry_refunds(sandbox, provider):
    trade = trade_request("30.00")
    await opened_and_paid(sandbox, provider, trade)
    await set_faults(sandbox, fail_refund=1)

    with pytest.raises(ProviderUnavailable):
        await provider.refund(trade.out_trade_no, "r1", Decimal("30.00"), "show cancelled")
    assert (await sandbox_trade(sandbox, trade.out_trade_no))["refunds"] == []
    retried = await provider.refund(trade.out_trade_no, "r1", Decimal("30.00"), "show cancelled")

    assert retried.refunded
    assert (await sandbox_trade(sandbox, trade.out_trade_no))["refunded"] == "30.00"


async def test_failed_query_is_unavailable_and_the_next_one_answers(sandbox, provider):
    trade = trade_request()
    await open_page(provider, trade)
    await set_faults(sandbox, fail_query=1)

    with pytest.raises(ProviderUnavailable):
        await provider.query_trade(trade.out_trade_no)

    assert (await provider.query_trade(trade.out_trade_no)).status is TradeStatus.WAITING


async def test_faults_are_visible_and_reset(sandbox):
    await set_faults(sandbox, drop=2, duplicate=2)

    shown = (await control(sandbox, "GET", "/sandbox/faults")).json()
    reset = (await control(sandbox, "DELETE", "/sandbox/faults")).json()

    assert shown["drop"] == 2 and shown["duplicate"] == 2
    assert reset["drop"] == 0 and reset["duplicate"] == 1


async def test_faults_that_do_not_read_are_refused(sandbox):
    response = await control(sandbox, "POST", "/sandbox/faults", json={"duplicate": 0})

    assert response.status_code == 400


# -- requests the sandbox refuses ------------------------------------------------------------------


async def test_request_signed_with_another_key_is_refused(sandbox):
    impostor = make_provider(sandbox, app_private_key_file=str(KEYS / "private.pem"))

    with pytest.raises(AlipayAnswerError) as refused:
        await impostor.query_trade("1")
    await impostor.aclose()

    assert refused.value.alipay_code == "40002" and refused.value.sub_code == "isv.invalid-signature"


async def test_request_from_another_app_is_refused(sandbox):
    stranger = make_provider(sandbox, app_id="2021000000009999")

    with pytest.raises(AlipayAnswerError) as refused:
        await stranger.query_trade("1")
    await stranger.aclose()

    assert refused.value.sub_code == "isv.invalid-app-id"


async def test_answer_signed_with_another_key_is_not_believed(sandbox):
    gullible = make_provider(sandbox, alipay_public_key_file=str(KEYS / "public.pem"))

    with pytest.raises(ProviderUnavailable, match="signature"):
        await gullible.query_trade("1")
    await gullible.aclose()


async def test_page_signed_with_another_key_is_an_error_page(sandbox):
    impostor = make_provider(sandbox, app_private_key_file=str(KEYS / "private.pem"))

    page = await open_page(impostor, trade_request())

    assert page.status_code == 400 and "isv.invalid-signature" in page.text


async def test_gateway_call_without_a_signature_is_refused(sandbox):
    response = await control(sandbox, "POST", "/gateway.do", data={"method": "alipay.trade.query"})

    assert json.loads(response.text)["alipay_trade_query_response"]["code"] == "40001"


async def _settle() -> None:
    await asyncio.sleep(SETTLE_S)
