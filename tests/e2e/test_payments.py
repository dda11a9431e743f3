"""Paying for real: the API, an allocator, a lifecycle, a payment processor and the payment sandbox
(a local provider speaking the Alipay protocol) as processes, the notifications signed and sent
over HTTP, lost, duplicated, late or forged on purpose."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from infra.payments.sandbox_keys import alipay_private_key_path
from infra.payments.signing import NOTIFICATION_UNSIGNED, load_private_key, sign_params
from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import available_seats, order_decision, remaining_counts
from projections.rebuild_inventory import rebuild_program_inventory
from tests.e2e.conftest import System, buyers_env
from tests.e2e.sandbox import sandbox_client, sandbox_env
from tests.e2e.test_allocation import automatic, on_sale, order
from tests.e2e.test_order_replay import program_keys
from tests.e2e.test_order_requests import Buyer, signed_in_buyer
from tests.e2e.test_rebuild_inventory import damai
from tests.processes import Child, eventually, free_port

pytestmark = pytest.mark.slow
PAYMENT_WINDOW_S = 6
SEATS = 40
SETTLED_S = 30
# A bill's age before the reconciler asks: inside the payment window, and 2 s past the deadline
# for a bill opened 2.5 s before it (the lifecycle's expiry fires within 2 s, so it asks first).
RECONCILE_AFTER_S = 4.5


@pytest.fixture(scope="module")
def sandbox_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def api_env(sandbox_port: int) -> dict[str, str]:
    return buyers_env(**payment_env(sandbox_port))


def payment_env(sandbox_port: int) -> dict[str, str]:
    return sandbox_env(sandbox_port) | {
        "DAMAI_PAYMENTS__RECONCILE_AFTER_S": str(RECONCILE_AFTER_S),
        "DAMAI_PAYMENTS__RECONCILE_TICK_S": "0.5",
        "DAMAI_PAYMENTS__REFUND_RETRY_INITIAL_S": "0.3",
        "DAMAI_ORDERS__PAYMENT_WINDOW_S": str(PAYMENT_WINDOW_S),
    }


@pytest_asyncio.fixture(scope="module")
async def processes(system: System, sandbox_port: int, tmp_path_factory) -> AsyncIterator[dict[str, Child]]:
    logs = tmp_path_factory.mktemp("payments")
    env = payment_env(sandbox_port)
    children = {
        name: Child(["cli.main", name], system.settings, logs / f"{name}.log", env)
        for name in ("sandbox-pay", "allocator", "lifecycle", "payments")
    }
    yield children
    for child in children.values():
        child.stop()


@pytest_asyncio.fixture(scope="module")
async def sandbox(processes: dict[str, Child], sandbox_port: int) -> AsyncIterator[httpx.AsyncClient]:
    async with sandbox_client(sandbox_port) as client:
        yield client


@pytest_asyncio.fixture
async def faults(sandbox: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox, its faults cleared after the test."""
    yield sandbox
    await sandbox.delete("/sandbox/faults")


async def paid_show(system: System, catalogue: ShardedDatabase, **changes: Any) -> dict[str, Any]:
    return await on_sale(system, catalogue, rows=4, columns=SEATS // 4, perAccountLimit=40, perOrderLimit=6, **changes)


async def held(system: System, show: dict[str, Any], buyer: Buyer, count: int = 2) -> dict[str, Any]:
    response = await order(system, buyer, automatic(show, count))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def start_paying(system: System, buyer: Buyer, number: str) -> dict[str, Any]:
    response = await system.http.post(
        f"/api/v1/orders/{number}/payment", json={"channel": "alipay"}, headers=buyer.auth
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def pay(sandbox: httpx.AsyncClient, started: dict[str, Any], number: str) -> httpx.Response:
    """The buyer opens the pay URL (the trade is made at the provider) and pays there."""
    opened = await sandbox.get(started["payUrl"])
    assert opened.status_code == 200, opened.text
    return await sandbox.post(f"/sandbox/trades/{number}/pay")


async def view(system: System, buyer: Buyer, number: str) -> dict[str, Any]:
    response = await system.http.get(f"/api/v1/orders/{number}", headers=buyer.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def becomes(system: System, buyer: Buyer, number: str, status: str, within_s: float = SETTLED_S) -> None:
    async def there() -> bool:
        return bool((await view(system, buyer, number))["status"] == status)

    await eventually(there, within_s, f"order {number} {status}")


async def history(system: System, number: str) -> list[str]:
    response = await system.http.get(f"/api/v1/admin/orders/{number}", headers=system.admin())
    assert response.status_code == 200, response.text
    return [e["type"] for e in response.json()["events"]]


async def decision_status(redis: Any, show: dict[str, Any], number: str) -> str:
    return str(orjson.loads(await redis.get(order_decision(show["program"], int(number))))["status"])


async def test_an_order_is_paid_through_the_sandbox_and_its_seats_are_sold(
    system: System, catalogue: ShardedDatabase, sandbox: httpx.AsyncClient, redis
):
    show = await paid_show(system, catalogue)
    buyer, other = await signed_in_buyer(system), await signed_in_buyer(system)
    placed = await held(system, show, buyer)
    number = placed["orderNumber"]

    started = await start_paying(system, buyer, number)
    again = await start_paying(system, buyer, number)
    not_theirs = await system.http.post(f"/api/v1/orders/{number}/payment", json={}, headers=other.auth)
    unknown = await system.http.post(f"/api/v1/orders/{number}/payment", json={"channel": "paypal"}, headers=buyer.auth)
    paid = await pay(sandbox, started, number)
    await becomes(system, buyer, number, "paid")
    after = await system.http.post(f"/api/v1/orders/{number}/payment", json={}, headers=buyer.auth)

    assert paid.status_code == 200, paid.text
    assert {k: v for k, v in again.items() if k != "payUrl"} == {k: v for k, v in started.items() if k != "payUrl"}
    assert (started["channel"], started["amount"]) == ("alipay", placed["totalAmount"])
    assert (not_theirs.status_code, not_theirs.json()["code"]) == (404, "ORDER_NOT_FOUND")
    assert (unknown.status_code, unknown.json()["code"]) == (422, "PAYMENT_CHANNEL_UNKNOWN")
    assert (after.status_code, after.json()["code"]) == (409, "ORDER_NOT_PAYABLE")
    assert await decision_status(redis, show, number) == "sold"
    assert await redis.zcard(available_seats(show["program"], show["category"])) == SEATS - 2
    assert await history(system, number) == [
        "SeatsReserved",
        "PayBillCreated",
        "PaymentNotified",
        "PaymentConfirmed",
        "OrderPaid",
    ]


async def test_a_notification_sent_ten_times_is_one_payment(
    system: System, catalogue: ShardedDatabase, faults: httpx.AsyncClient
):
    show = await paid_show(system, catalogue)
    buyer = await signed_in_buyer(system)
    number = (await held(system, show, buyer))["orderNumber"]
    started = await start_paying(system, buyer, number)

    await faults.post("/sandbox/faults", json={"duplicate": 10})
    await pay(faults, started, number)
    await becomes(system, buyer, number, "paid")
    await eventually(lambda: _notifications_answered(faults, number, 10), SETTLED_S, "ten notifications answered")

    events = await history(system, number)
    assert events.count("PaymentNotified") == 1
    assert events.count("OrderPaid") == 1
    assert "RefundRequired" not in events


async def _notifications_answered(sandbox: httpx.AsyncClient, number: str, count: int) -> bool:
    """``count`` copies of the trade's notifications were answered ``success``."""
    state = (await sandbox.get(f"/sandbox/trades/{number}")).json()
    answered = [a for n in state["notifications"] for a in n["answers"] if a.get("body") == "success"]
    return len(answered) >= count


async def test_a_lost_notification_is_made_good_by_the_buyers_check(
    system: System, catalogue: ShardedDatabase, faults: httpx.AsyncClient
):
    show = await paid_show(system, catalogue)
    buyer, other = await signed_in_buyer(system), await signed_in_buyer(system)
    number = (await held(system, show, buyer))["orderNumber"]
    started = await start_paying(system, buyer, number)

    await faults.post("/sandbox/faults", json={"drop": 1})
    await pay(faults, started, number)
    await asyncio.sleep(0.5)
    before = await view(system, buyer, number)
    not_theirs = await system.http.post(f"/api/v1/orders/{number}/payment/check", headers=other.auth)
    checked = await system.http.post(f"/api/v1/orders/{number}/payment/check", headers=buyer.auth)

    assert before["status"] == "unpaid"
    assert (not_theirs.status_code, not_theirs.json()["code"]) == (404, "ORDER_NOT_FOUND")
    assert checked.status_code == 200, checked.text
    assert checked.json()["status"] == "paid"
    assert (await history(system, number)).count("PaymentNotified") == 1


async def test_a_lost_notification_is_made_good_by_the_reconciler(
    system: System, catalogue: ShardedDatabase, faults: httpx.AsyncClient
):
    show = await paid_show(system, catalogue)
    buyer = await signed_in_buyer(system)
    number = (await held(system, show, buyer))["orderNumber"]
    started = await start_paying(system, buyer, number)

    await faults.post("/sandbox/faults", json={"drop": 1})
    await pay(faults, started, number)
    await becomes(system, buyer, number, "paid", within_s=PAYMENT_WINDOW_S)

    assert (await history(system, number)).count("PaymentNotified") == 1


async def test_a_buyer_who_paid_in_the_last_second_is_not_expired(
    system: System, catalogue: ShardedDatabase, faults: httpx.AsyncClient, processes: dict[str, Child]
):
    """The notification is lost and the deadline comes before the reconciler's turn: the
    lifecycle asks the provider before it expires the order, and the payment is recorded instead.
    (The provider's ``time_expire`` is whole seconds, so it closes the trade up to a second before
    the deadline: the buyer pays 1.5 s before it.)"""
    show = await paid_show(system, catalogue)
    buyer = await signed_in_buyer(system)
    placed = await held(system, show, buyer)
    number = placed["orderNumber"]
    deadline = datetime.fromisoformat(placed["payDeadline"])
    await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds() - 2.5))
    started = await start_paying(system, buyer, number)  # the reconciler's turn: 2 s after the deadline

    await faults.post("/sandbox/faults", json={"drop": 1})
    await faults.get(started["payUrl"])
    await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds() - 1.5))
    paid = await faults.post(f"/sandbox/trades/{number}/pay")

    assert paid.status_code == 200, paid.text
    await becomes(system, buyer, number, "paid")
    assert "OrderExpired" not in await history(system, number)
    waited = [line for line in processes["lifecycle"].output().splitlines() if "expiry_waits_for_payment" in line]
    assert any(number in line for line in waited), "the lifecycle never asked the provider"


def _notice(system: System, number: str, amount: str, **changes: str) -> dict[str, str]:
    now = datetime.now(UTC) + timedelta(hours=8)
    form = {
        "notify_time": now.strftime("%Y-%m-%d %H:%M:%S"),
        "notify_type": "trade_status_sync",
        "notify_id": uuid.uuid4().hex,
        "app_id": system.settings.payments.alipay.app_id,
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "trade_no": f"2026{time.time_ns() % 10**16:016d}",
        "out_trade_no": number,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": amount,
        "gmt_payment": now.strftime("%Y-%m-%d %H:%M:%S"),
    } | changes
    key = load_private_key(alipay_private_key_path(system.settings.state_dir))
    form["sign"] = sign_params(form, key, NOTIFICATION_UNSIGNED)
    return form


async def _notify(system: System, form: dict[str, str]) -> httpx.Response:
    return await system.http.post("/api/v1/payments/alipay/notify", data=form)


async def test_forged_tampered_and_wrong_notifications_are_refused_and_change_nothing(
    system: System, catalogue: ShardedDatabase, sandbox: httpx.AsyncClient, redis
):
    show = await paid_show(system, catalogue)
    buyer = await signed_in_buyer(system)
    placed = await held(system, show, buyer)
    number, total = placed["orderNumber"], placed["totalAmount"]
    await start_paying(system, buyer, number)

    forged = _notice(system, number, total)
    forged["sign"] = forged["sign"][:-8] + "AAAAAAA="
    tampered = _notice(system, number, total)
    tampered["total_amount"] = "0.01"
    answers = {
        "forged": await _notify(system, forged),
        "tampered": await _notify(system, tampered),
        "amount": await _notify(system, _notice(system, number, "0.01")),
        "app_id": await _notify(system, _notice(system, number, total, app_id="2021000000009999")),
        "unknown order": await _notify(system, _notice(system, "123456789", total)),
    }
    await asyncio.sleep(0.5)
    unpaid = await view(system, buyer, number)
    good = await _notify(system, _notice(system, number, total))
    await becomes(system, buyer, number, "paid")
    metrics = (await system.http.get("/metrics")).text

    assert {k: (a.status_code, a.text) for k, a in answers.items()} == {k: (400, "failure") for k in answers}
    assert unpaid["status"] == "unpaid"
    assert (good.status_code, good.text) == (200, "success")
    assert (await history(system, number)).count("PaymentNotified") == 1
    for reason in ("signature", "amount", "app_id", "unknown_trade"):
        assert f'outcome="{reason}"' in metrics, reason


async def test_a_payment_after_the_cancel_is_given_back_and_the_order_ends_refunded(
    system: System, catalogue: ShardedDatabase, faults: httpx.AsyncClient, redis
):
    show = await paid_show(system, catalogue)
    buyer = await signed_in_buyer(system)
    number = (await held(system, show, buyer))["orderNumber"]
    started = await start_paying(system, buyer, number)

    await faults.post("/sandbox/faults", json={"delay_s": 1.5})
    await pay(faults, started, number)
    cancelled = await system.http.post(f"/api/v1/orders/{number}/cancel", headers=buyer.auth)
    await becomes(system, buyer, number, "refunded")
    trade = (await faults.get(f"/sandbox/trades/{number}")).json()

    assert cancelled.json()["status"] == "cancelled"
    assert [r["amount"] for r in trade["refunds"]] == [started["amount"]]
    assert await redis.zcard(available_seats(show["program"], show["category"])) == SEATS
    events = await history(system, number)
    assert events.index("OrderCancelled") < events.index("RefundRequired") < events.index("OrderRefunded")


async def test_a_paid_order_is_refunded_within_its_policy_even_when_the_provider_fails_once(
    system: System, catalogue: ShardedDatabase, faults: httpx.AsyncClient, redis
):
    refundable = {"refundPolicy": {"refundable": True, "deadlineHoursBeforeShow": 24}}
    show = await paid_show(system, catalogue, **refundable)
    strict = await paid_show(system, catalogue)
    buyer, other = await signed_in_buyer(system), await signed_in_buyer(system)
    number = (await held(system, show, buyer))["orderNumber"]
    kept = (await held(system, strict, buyer))["orderNumber"]
    for n in (number, kept):
        await pay(faults, await start_paying(system, buyer, n), n)
        await becomes(system, buyer, n, "paid")

    await faults.post("/sandbox/faults", json={"fail_refund": 1})
    not_theirs = await system.http.post(f"/api/v1/orders/{number}/refund", headers=other.auth)
    refused = await system.http.post(f"/api/v1/orders/{kept}/refund", headers=buyer.auth)
    refunded = await system.http.post(
        f"/api/v1/orders/{number}/refund", json={"reason": "cannot go"}, headers=buyer.auth
    )
    again = await system.http.post(f"/api/v1/orders/{number}/refund", headers=buyer.auth)

    assert (not_theirs.status_code, not_theirs.json()["code"]) == (404, "ORDER_NOT_FOUND")
    assert (refused.status_code, refused.json()["code"]) == (409, "REFUND_NOT_ALLOWED")
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "refunded"
    assert (again.status_code, again.json()["code"]) == (409, "ORDER_NOT_REFUNDABLE")
    assert await redis.zcard(available_seats(show["program"], show["category"])) == SEATS
    assert int(await redis.hget(remaining_counts(show["program"]), str(show["category"]))) == SEATS

    async def given_back() -> bool:
        return "OrderRefunded" in await history(system, number)

    await eventually(given_back, SETTLED_S, "the refund, tried again after the provider failed it")
    events = await history(system, number)
    assert events.count("RefundFailed") == 1 and events.count("RefundSucceeded") == 1
    trade = (await faults.get(f"/sandbox/trades/{number}")).json()
    assert [r["amount"] for r in trade["refunds"]] == [refunded.json()["totalAmount"]]

    admin = await system.http.post(f"/api/v1/admin/orders/{kept}/refund", headers=system.admin())
    assert admin.status_code == 200, admin.text
    assert admin.json()["status"] == "refunded"
    assert await redis.zcard(available_seats(strict["program"], strict["category"])) == SEATS


async def test_pay_cancel_and_expiry_racing_on_orders_always_end_with_the_money_matching_the_seats(
    system: System, catalogue: ShardedDatabase, sandbox: httpx.AsyncClient, redis
):
    """Each order: paid at the provider at a random moment around its deadline, maybe cancelled at
    another; whatever wins, a paid order holds sold seats and one payment, and every other order
    holds no seat and has any money it took given back."""
    show = await paid_show(system, catalogue)
    buyer = await signed_in_buyer(system)
    rng = random.Random(12)
    orders = [await held(system, show, buyer) for _ in range(8)]
    started = {o["orderNumber"]: await start_paying(system, buyer, o["orderNumber"]) for o in orders}

    async def race(placed: dict[str, Any]) -> None:
        number = placed["orderNumber"]
        deadline = datetime.fromisoformat(placed["payDeadline"])
        left_s = (deadline - datetime.now(UTC)).total_seconds()
        await sandbox.get(started[number]["payUrl"])

        async def paying() -> None:
            await asyncio.sleep(max(0.0, left_s + rng.uniform(-1.5, 0.3)))
            await sandbox.post(f"/sandbox/trades/{number}/pay")

        async def cancelling() -> None:
            await asyncio.sleep(max(0.0, left_s + rng.uniform(-1.5, 0.3)))
            await system.http.post(f"/api/v1/orders/{number}/cancel", headers=buyer.auth)

        await asyncio.gather(paying(), *([cancelling()] if rng.random() < 0.5 else []))

    await asyncio.gather(*(race(o) for o in orders))

    sold = 0
    for placed in orders:
        number = placed["orderNumber"]

        async def settled(n: str = number) -> bool:
            status = (await view(system, buyer, n))["status"]
            trade = (await sandbox.get(f"/sandbox/trades/{n}")).json()
            took_money = trade["status"] in ("TRADE_SUCCESS", "TRADE_FINISHED") or bool(trade["refunds"])
            return status == "paid" or (status in ("cancelled", "expired") and not took_money) or status == "refunded"

        await eventually(settled, SETTLED_S, f"order {number} to settle")
        status = (await view(system, buyer, number))["status"]
        trade = (await sandbox.get(f"/sandbox/trades/{number}")).json()
        refunded = sum((Decimal(r["amount"]) for r in trade["refunds"]), Decimal("0"))
        if status == "paid":
            sold += 1
            assert await decision_status(redis, show, number) == "sold"
            assert trade["status"] == "TRADE_SUCCESS" and refunded == 0
        elif status == "refunded":
            assert refunded == Decimal(placed["totalAmount"]), trade
        else:
            assert trade["status"] not in ("TRADE_SUCCESS", "TRADE_FINISHED"), trade
        assert (await history(system, number)).count("OrderPaid") == (1 if status == "paid" else 0)
    assert await redis.zcard(available_seats(show["program"], show["category"])) == SEATS - 2 * sold


async def test_a_program_rebuilt_from_the_log_after_payments_and_refunds_is_as_it_was(
    system: System, catalogue: ShardedDatabase, faults: httpx.AsyncClient, redis
):
    """Sold, refunded after paying, and given back after a cancel: `damai rebuild inventory` makes
    the program's Redis state from the log exactly as the scripts left it, and verify finds it whole."""
    show = await paid_show(system, catalogue, refundPolicy={"refundable": True, "deadlineHoursBeforeShow": 1})
    buyer = await signed_in_buyer(system)
    sold, refunded, late = [(await held(system, show, buyer))["orderNumber"] for _ in range(3)]
    for number in (sold, refunded):
        await pay(faults, await start_paying(system, buyer, number), number)
        await becomes(system, buyer, number, "paid")
    answer = await system.http.post(f"/api/v1/orders/{refunded}/refund", headers=buyer.auth)
    assert answer.json()["status"] == "refunded", answer.text
    started = await start_paying(system, buyer, late)
    await faults.post("/sandbox/faults", json={"delay_s": 1.0})
    await pay(faults, started, late)
    await system.http.post(f"/api/v1/orders/{late}/cancel", headers=buyer.auth)
    await becomes(system, buyer, late, "refunded")

    before = await program_keys(redis, show["program"])
    rebuilt = await rebuild_program_inventory(system.settings, redis, show["program"])
    after = await program_keys(redis, show["program"])
    verified = damai(system, "verify", "orders", "--program", str(show["program"]))

    assert rebuilt is not None
    assert after == before
    assert await redis.zcard(available_seats(show["program"], show["category"])) == SEATS - 2
    assert verified.returncode == 0, verified.stdout + verified.stderr
