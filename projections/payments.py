"""The payment processor: what happens between the provider and the order (issue 12,
docs/payments.md). A consumer group over ``payment`` and ``order`` with two schedules in Redis.

- A ``PaymentNotified`` (a pay bill's payment, recorded once per provider trade) becomes the
  order's ``PaymentConfirmed`` intent, which the lifecycle's Order aggregate decides: sold, or given
  back. Its event id derives from the order and the trade, so a redelivery appends the same intent.
- A ``RefundRequired`` (the order decided a payment goes back) is scheduled, then carried out at the
  provider under a refund number derived from the order's event, so asking again never refunds
  twice. A success is recorded on the bill (``RefundSucceeded``) and told to the order
  (``RefundConfirmed`` → ``OrderRefunded``); a failure is recorded (``RefundFailed``: visible in
  the order view) and tried again with a growing wait. The schedule is durable: a refund is never
  forgotten by a restart.
- The reconciler asks the provider about bills of unpaid orders left without a notification for
  ``payments.reconcile_after_s`` (or at once, when the lifecycle found one paid at its deadline)
  and records a payment it finds, as a notification would have.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import orjson
import structlog
from redis.asyncio import Redis

from aggregates.pay_bill import PayBill
from commands.payment import record_payment
from commands.ports import AggregateStore, PaymentProvider, ProviderUnavailable, change
from events.envelope import EventEnvelope, derived_event_id
from events.order import PaymentConfirmed, RefundConfirmed, RefundRequired
from events.payment import PayBillCreated, PaymentNotified, PaymentSource, pay_bill_key
from infra.kafka import EventPublisher
from infra.metrics import PAYMENTS_RECONCILED, REFUND_ATTEMPTS
from infra.redis import LuaScripts
from infra.redis_keys import open_bills, order_decision, order_member, refunds_due
from infra.settings import Settings
from projections.deciders import Chore, Decider, Fetched, append_decided, decoded, retrying

log = structlog.get_logger(__name__)

HELD = "held"
FETCH_WAIT_MS = 500
"""Longest a fetch waits for records before the refunds and the reconciler get their turn."""
REFUNDS_PER_TICK = 100
REFUND_REQUIRED = b'"RefundRequired"'
"""How the one event of ``order`` this processor reads shows in a record's bytes (its envelope's type)."""


def refund_number(order_number: int, refund_version: int) -> str:
    """Our number of the refund the order decided at ``refund_version`` (Alipay's ``out_request_no``)."""
    return f"{order_number}-R{refund_version}"


class PaymentProcessor(Decider):
    kind = "payments"

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        scripts: LuaScripts,
        publisher: EventPublisher,
        providers: Mapping[str, PaymentProvider],
        store: AggregateStore,
    ) -> None:
        super().__init__(
            settings,
            settings.payments.group,
            [settings.kafka.topic("payment"), settings.kafka.topic("order")],
            fetch_wait_ms=FETCH_WAIT_MS,
        )
        self._redis = redis
        self._publisher = publisher
        self._providers = providers
        self._store = store

    def chores(self) -> list[Chore]:
        return [Chore(self.refund_due, 0), Chore(self.reconcile, self._settings.payments.reconcile_tick_s)]

    async def handle(self, fetched: Fetched) -> None:
        """Turn payments into the orders' intents and schedule refunds and reconciliations."""
        out: list[EventEnvelope] = []
        refunds: dict[bytes, int] = {}
        bills: dict[str, int] = {}
        now_ms = _now_ms()
        order_topic = self._settings.kafka.topic("order")
        for tp, records in fetched.items():
            for record in records:
                if tp.topic == order_topic and REFUND_REQUIRED not in (record.value or b""):
                    continue  # the order's other events (a sale's thousands of holds): not decoded
                found = decoded(record, self.group)
                if found is None:
                    continue
                envelope, event = found
                match event:
                    case PaymentNotified():
                        out.append(_confirmed(envelope, event))
                    case PayBillCreated():
                        member = order_member(event.order_number, event.program_id, event.user_id)
                        bills[member] = now_ms + int(self._settings.payments.reconcile_after_s * 1000)
                    case RefundRequired():
                        refunds[_refund_member(envelope, event)] = now_ms
        await append_decided(self._publisher, self._settings, out)
        prefix = self._settings.orders.key_prefix
        if bills:
            await retrying("schedule", lambda: self._redis.zadd(open_bills(prefix), bills, nx=True))
        if refunds:
            await retrying("schedule", lambda: self._redis.zadd(refunds_due(prefix), refunds, nx=True))

    # -- refunds ---------------------------------------------------------------------------------

    async def refund_due(self) -> int:
        """Carry out the refunds whose time has come; returns how many went through."""
        key = refunds_due(self._settings.orders.key_prefix)
        due = cast(list[bytes], await self._redis.zrangebyscore(key, "-inf", _now_ms(), start=0, num=REFUNDS_PER_TICK))
        done = 0
        for member in due:
            done += await self._refund(key, member)
        return done

    async def _refund(self, key: str, member: bytes) -> int:
        job = orjson.loads(member)
        order_number, number, amount = int(job["order"]), str(job["refund"]), Decimal(job["amount"])
        bill = await self._store.load(PayBill, pay_bill_key(order_number))
        provider = self._providers.get(bill.channel) if bill is not None else None
        if bill is None or provider is None:
            log.error("payments.refund_without_bill", order_number=order_number, refund_number=number)
            await self._redis.zrem(key, member)
            return 0
        try:
            result = await provider.refund(str(order_number), number, amount, "order refunded")
            if not result.refunded:
                raise ProviderUnavailable()
        except ProviderUnavailable as exc:
            await self._refund_failed(key, member, bill, job, str(exc) or type(exc).__name__)
            return 0
        refunded_at = result.refunded_at or datetime.now(UTC)

        def succeeded(found: PayBill | None) -> PayBill:
            assert found is not None
            found.record_refund(job["payment"], number, amount, refunded_at)
            return found

        await change(self._store, PayBill, pay_bill_key(order_number), succeeded, None)
        confirmed = RefundConfirmed(
            order_number=order_number,
            user_id=int(job["user"]),
            program_id=int(job["program"]),
            payment_id=job["payment"],
            refund_number=number,
            amount=amount,
            refunded_at=refunded_at,
        )
        envelope = EventEnvelope.wrap(
            confirmed,
            aggregate_version=1,
            event_id=derived_event_id(order_number, RefundConfirmed.event_type, number),
        )
        await append_decided(self._publisher, self._settings, [envelope])
        await self._redis.zrem(key, member)
        REFUND_ATTEMPTS.labels(outcome="refunded").inc()
        log.info("payments.refunded", order_number=order_number, refund_number=number, amount=str(amount))
        return 1

    async def _refund_failed(self, key: str, member: bytes, bill: PayBill, job: dict[str, Any], error: str) -> None:
        number = str(job["refund"])
        attempt = bill.failed_attempts.get(number, 0) + 1
        settings = self._settings.payments
        wait_s = min(settings.refund_retry_initial_s * 2 ** (attempt - 1), settings.refund_retry_max_s)
        retry_at = datetime.now(UTC) + timedelta(seconds=wait_s)

        def failed(found: PayBill | None) -> PayBill:
            assert found is not None
            found.record_refund_failure(job["payment"], number, Decimal(job["amount"]), error, retry_at)
            return found

        await change(self._store, PayBill, bill.id, failed, None)
        await self._redis.zadd(key, {member: int(retry_at.timestamp() * 1000)})
        REFUND_ATTEMPTS.labels(outcome="failed").inc()
        log.warning(
            "payments.refund_failed", order_number=job["order"], refund_number=number, attempt=attempt, error=error
        )

    # -- reconciliation --------------------------------------------------------------------------

    async def reconcile(self) -> int:
        """Ask the provider about the open bills that are due; returns how many were found paid."""
        settings = self._settings.payments
        key = open_bills(self._settings.orders.key_prefix)
        due = cast(
            list[bytes], await self._redis.zrangebyscore(key, "-inf", _now_ms(), start=0, num=settings.reconcile_batch)
        )
        if not due:
            return 0
        limit = asyncio.Semaphore(settings.reconcile_concurrency)

        async def one(member: bytes) -> bool:
            async with limit:
                return await self._reconcile_one(key, member)

        found = await asyncio.gather(*(one(m) for m in due))
        return sum(found)

    async def _reconcile_one(self, key: str, member: bytes) -> bool:
        order_number, program_id, _ = (int(p) for p in member.decode().split(":"))
        raw = await self._redis.get(order_decision(program_id, order_number))
        if raw is None or orjson.loads(raw)["status"] != HELD:  # ended (paid, cancelled, expired): nothing to ask
            await self._redis.zrem(key, member)
            PAYMENTS_RECONCILED.labels(outcome="ended").inc()
            return False
        bill = await self._store.load(PayBill, pay_bill_key(order_number))
        provider = self._providers.get(bill.channel) if bill is not None else None
        if bill is None or provider is None:
            await self._redis.zrem(key, member)
            return False
        again_ms = _now_ms() + int(self._settings.payments.reconcile_after_s * 1000)
        try:
            trade = await provider.query_trade(str(order_number))
        except ProviderUnavailable as exc:
            PAYMENTS_RECONCILED.labels(outcome="unavailable").inc()
            log.warning("payments.reconcile_failed", order_number=order_number, error=str(exc))
            await self._redis.zadd(key, {member: again_ms})
            return False
        if not trade.status.paid:
            PAYMENTS_RECONCILED.labels(outcome="open").inc()
            await self._redis.zadd(key, {member: again_ms})
            return False
        recorded = await record_payment(
            self._store, bill.channel, trade, PaymentSource.RECONCILER, None, lambda: datetime.now(UTC)
        )
        PAYMENTS_RECONCILED.labels(outcome="paid").inc()
        log.info("payments.reconciled", order_number=order_number, trade_no=trade.trade_no, recorded=recorded)
        await self._redis.zadd(key, {member: again_ms})  # dropped once the order is seen paid
        return True


def _confirmed(envelope: EventEnvelope, event: PaymentNotified) -> EventEnvelope:
    intent = PaymentConfirmed(
        order_number=event.order_number,
        user_id=event.user_id,
        program_id=event.program_id,
        payment_id=event.trade_no,
        amount=event.amount,
        paid_at=event.paid_at,
    )
    return EventEnvelope.wrap(
        intent,
        aggregate_version=1,
        event_id=derived_event_id(event.order_number, PaymentConfirmed.event_type, event.trade_no),
        correlation_id=envelope.correlation_id,
        causation_id=envelope.event_id,
    )


def _refund_member(envelope: EventEnvelope, event: RefundRequired) -> bytes:
    """The refund's schedule entry: the same for every delivery of one ``RefundRequired``."""
    return orjson.dumps(
        {
            "order": event.order_number,
            "program": event.program_id,
            "user": event.user_id,
            "payment": event.payment_id,
            "amount": f"{event.amount:.2f}",
            "refund": refund_number(event.order_number, envelope.aggregate_version),
        },
        option=orjson.OPT_SORT_KEYS,
    )


def _now_ms() -> int:
    return int(time.time() * 1000)
