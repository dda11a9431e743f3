"""An order's life after the allocator's decision: cancelled by its buyer, expired at its payment
deadline, or paid (issue 11, docs/orders.md).

A consumer group over ``order`` (keyed per order, so one lifecycle owns each order's partition).
The Order aggregate (``aggregates/order.py``) decides what follows each intent: a
``CancelRequested`` the API appended, a payment deadline that passed (a schedule per partition in
Redis, scored by the deadline and checked every ``lifecycle_tick_ms``), a ``PaymentConfirmed``.
Its state is its snapshot in Redis, in the program's slot beside the allocator's decision: made
from ``SeatsReserved`` when the lifecycle reads it, and saved with every decision by
``lua/order_release.lua``, which also gives the seats back or sells them — only while the snapshot
is still at the version the aggregate was loaded at and the decision still held. So of a cancel
racing an expiry, or two lifecycles across a rebalance, the first save wins and the other,
reloading, finds the order ended. Then the events are appended, with ids derived from the order
number; an intent the aggregate already answered (a crash before the append, a redelivery) is
answered again with the same event, the same id and version.

An intent for an order whose decision has not reached the log yet (the allocator writes Redis
first) waits in the snapshot's hash until its ``SeatsReserved`` or ``OrderRejected`` arrives on
this partition; a snapshot that is gone (a Redis without its data) is rebuilt from the order's
events in its partition, the slow path.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import structlog
from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from redis.asyncio import Redis

from aggregates.base import Decided
from aggregates.errors import Conflict
from aggregates.order import NOT_DUE, Order, OrderStatus
from commands.ports import PaymentProvider, ProviderUnavailable
from events.base import DomainEvent
from events.envelope import EventEnvelope, derived_event_id
from events.order import (
    CancelRequested,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    OrderRefunded,
    OrderRejected,
    PaymentConfirmed,
    RefundConfirmed,
    RefundRequested,
    RefundRequired,
    SeatsReserved,
    order_key,
)
from events.program import RefundPolicy
from events.serialization import decode, encode, payload_of
from infra.kafka import EventPublisher, read_aggregate_events
from infra.metrics import EXPIRY_BACKLOG, EXPIRY_LATENESS, ORDERS_ENDED
from infra.redis import REDIS_ERRORS, LuaScripts
from infra.redis_keys import (
    SEAT_ROW_STRIDE,
    open_bills,
    order_expiries,
    order_member,
    order_snapshot,
    pay_bill_marker,
)
from infra.settings import Settings
from projections.deciders import Chore, Decider, Fetched, append_decided, decoded, retrying
from projections.seat_allocation import Loaded, load_order, queue_first_snapshot, save_order

log = structlog.get_logger(__name__)

EXPIRIES_PER_TICK = 500
EXPIRY_POSTPONE_MS = 2_000
"""How long the expiry of an order its provider says is paid waits for that payment to be recorded."""
EXPIRY_CHECK_GRACE_MS = 60_000
"""Past its deadline by this much, an order expires whatever its provider says (a provider down for
long must not hold seats for ever); a payment after that is given back."""
ENDED = "OrderEnded"
"""The event id of an order's one ending (cancelled or expired) derives from this."""
SAVE_ATTEMPTS = 3
"""Saves of one decision lost to another process before giving up (each reloads first)."""
WAITING = "waiting:"
"""Field prefix, in an order's snapshot hash, of an intent waiting for the order's decision."""
SNAPSHOT_FIELDS = 2
"""An order's snapshot hash holds ``version`` and ``state`` (lua/order_release.lua); any more are
intents waiting for its decision (``WAITING``)."""
ENDINGS_GIVING_BACK = (OrderStatus.CANCELLED, OrderStatus.EXPIRED)


@dataclass(frozen=True)
class Due:
    order_number: int
    program_id: int
    user_id: int


@dataclass(frozen=True)
class DeadlinePassed:
    """The expiry schedule's intent: the payment deadline has passed by ``now``."""

    now: datetime


Intent = CancelRequested | PaymentConfirmed | RefundRequested | RefundConfirmed | DeadlinePassed


def _due(member: object) -> Due:
    text = member.decode() if isinstance(member, bytes) else str(member)
    order, program, user = text.split(":")
    return Due(int(order), int(program), int(user))


class _Assignment(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka's listener is untyped
    def __init__(self) -> None:
        self.partitions: set[int] = set()

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.partitions -= {tp.partition for tp in revoked}

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.partitions |= {tp.partition for tp in assigned}


class Lifecycle(Decider):
    kind = "lifecycle"

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        scripts: LuaScripts,
        publisher: EventPublisher,
        providers: Mapping[str, PaymentProvider] | None = None,
    ) -> None:
        self._assignment = _Assignment()
        super().__init__(
            settings,
            settings.worker.lifecycle_group,
            [settings.kafka.topic("order")],
            fetch_wait_ms=settings.worker.lifecycle_tick_ms,
            listener=self._assignment,
        )
        self._providers = providers or {}
        self._postponed: dict[Due, int] = {}
        """Due orders whose expiry waits for a payment their provider reported, until when (ms)."""
        self._redis = redis
        self._scripts = scripts
        self._publisher = publisher

    def chores(self) -> list[Chore]:
        return [
            Chore(self.expire_due, self._settings.worker.lifecycle_tick_ms / 1000),
            Chore(self.measure_expiry_backlog, self._settings.observability.lag_interval_s),
        ]

    async def handle(self, fetched: Fetched) -> None:
        """Apply a fetch in order, append what it decided, forget the waiting intents it answered."""
        out: list[EventEnvelope] = []
        answered: list[tuple[str, bytes]] = []
        for tp, records in fetched.items():
            # The allocator's decisions come in runs (a hot sale: nearly all of a fetch): each run
            # is taken in one Redis round trip, before the next intent of the partition is decided.
            decisions: list[tuple[EventEnvelope, SeatsReserved | OrderRejected]] = []
            for record in records:
                found = decoded(record, self.group)
                if found is None:
                    continue
                envelope, event = found
                if isinstance(event, SeatsReserved | OrderRejected):
                    log.info(
                        "lifecycle.decision_read",
                        order_number=event.order_number,
                        type=envelope.type,
                        correlation_id=str(envelope.correlation_id),
                    )
                    decisions.append((envelope, event))
                    continue
                out += await self._decided(tp.partition, decisions, answered)
                decisions = []
                with structlog.contextvars.bound_contextvars(correlation_id=str(envelope.correlation_id)):
                    out += await self._apply(tp.partition, envelope, event, answered)
            out += await self._decided(tp.partition, decisions, answered)
        await append_decided(self._publisher, self._settings, out)
        for key, field in answered:
            await self._redis.hdel(key, field)

    async def expire_due(self) -> list[EventEnvelope]:
        """Expire every order of this process's partitions whose payment deadline has passed."""
        now_ms = int(time.time() * 1000)
        ended: list[EventEnvelope] = []
        for partition in sorted(self._assignment.partitions):
            key = order_expiries(self._settings.orders.key_prefix, partition)
            due = await self._redis.zrangebyscore(key, "-inf", now_ms, start=0, num=EXPIRIES_PER_TICK, withscores=True)
            if not due:
                continue
            out: list[EventEnvelope] = []
            settled: list[Any] = []
            for member, deadline_ms in cast(list[tuple[bytes, float]], due):
                order = _due(member)
                if now_ms < self._postponed.get(order, 0):
                    continue
                if now_ms - int(deadline_ms) < EXPIRY_CHECK_GRACE_MS and await self._may_have_paid(order):
                    self._postponed[order] = now_ms + EXPIRY_POSTPONE_MS
                    continue
                self._postponed.pop(order, None)
                answer = await self._decide(order.program_id, order.order_number, DeadlinePassed(datetime.now(UTC)))
                if answer is not None:  # None: not due by the aggregate's clock yet; the next tick
                    out += answer
                    settled.append(member)
                    if any(e.type == OrderExpired.event_type for e in answer):
                        EXPIRY_LATENESS.observe(max(time.time() * 1000 - deadline_ms, 0) / 1000)
            await append_decided(self._publisher, self._settings, out)
            if settled:
                await self._redis.zrem(key, *settled)
            ended += out
        return ended

    async def measure_expiry_backlog(self) -> int | None:
        """Holds of this process's partitions past their payment deadline and not expired yet
        (``damai_expiry_backlog_orders``): one round trip over its schedules."""
        now_ms = int(time.time() * 1000)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for partition in sorted(self._assignment.partitions):
                    pipe.zcount(order_expiries(self._settings.orders.key_prefix, partition), "-inf", now_ms)
                backlog = sum(int(n) for n in await pipe.execute())
        except REDIS_ERRORS as exc:  # a metric is not worth stopping the lifecycle for
            log.warning("lifecycle.backlog_unmeasured", error=repr(exc))
            return None
        EXPIRY_BACKLOG.set(backlog)
        return backlog

    async def _may_have_paid(self, order: Due) -> bool:
        """Whether an order at its payment deadline may have been paid: it has a bill open and its
        provider says paid (or cannot say). Then its expiry waits and the reconciler is told to ask
        at once (``payments.check_before_expiry``); the payment it records pays the order."""
        if not self._settings.payments.check_before_expiry:
            return False
        raw = await self._redis.get(pay_bill_marker(order.program_id, order.order_number))
        if raw is None:
            return False
        provider = self._providers.get(orjson.loads(raw)["channel"])
        if provider is None:
            return False
        try:
            trade = await provider.query_trade(str(order.order_number))
        except ProviderUnavailable as exc:
            log.warning("lifecycle.expiry_check_failed", order_number=order.order_number, error=str(exc))
            return True
        if not trade.status.paid:
            return False
        log.info("lifecycle.expiry_waits_for_payment", order_number=order.order_number, trade_no=trade.trade_no)
        member = order_member(order.order_number, order.program_id, order.user_id)
        await self._redis.zadd(open_bills(self._settings.orders.key_prefix), {member: 0})
        return True

    async def _apply(
        self, partition: int, envelope: EventEnvelope, event: DomainEvent, answered: list[tuple[str, bytes]]
    ) -> list[EventEnvelope]:
        match event:
            case RefundRequested() | RefundConfirmed():
                return await self._decide(event.program_id, event.order_number, event, envelope) or []
            case CancelRequested() | PaymentConfirmed():
                await self._unschedule(partition, event.order_number, event.program_id, event.user_id)
                answer = await self._decide(event.program_id, event.order_number, event, envelope)
                if answer is None:
                    await self._wait_for_decision(event.program_id, event.order_number, envelope)
                return answer or []
        return []

    async def _decided(
        self,
        partition: int,
        decisions: list[tuple[EventEnvelope, SeatsReserved | OrderRejected]],
        answered: list[tuple[str, bytes]],
    ) -> list[EventEnvelope]:
        """The allocator's decisions reached the log. Each hold: the order's first snapshot and its
        expiry scheduled (a rejection has nothing to end; a payment that ever names it loads it
        from the log) — a run of decisions in one pipeline. Then the intents that waited for one
        (rare: a client racing the allocator) are decided."""
        if not decisions:
            return []
        schedule = order_expiries(self._settings.orders.key_prefix, partition)

        async def first_snapshots() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for envelope, event in decisions:
                    if isinstance(event, SeatsReserved):
                        order = Order.from_log([envelope])
                        assert order is not None
                        await queue_first_snapshot(pipe, self._scripts, order, SEAT_ROW_STRIDE, self._ttl_s)
                        deadline_ms = int(event.pay_deadline.timestamp() * 1000)
                        member = order_member(event.order_number, event.program_id, event.user_id)
                        pipe.zadd(schedule, {member: deadline_ms})
                    pipe.hlen(order_snapshot(event.program_id, event.order_number))
                return list(await pipe.execute())

        replies = iter(await retrying("save", first_snapshots))
        out: list[EventEnvelope] = []
        for _, event in decisions:
            fields = SNAPSHOT_FIELDS if isinstance(event, SeatsReserved) else 0
            if isinstance(event, SeatsReserved):
                next(replies), next(replies)  # the save (first snapshot: saved, or saved before) and the ZADD
            if int(next(replies)) > fields:
                out += await self._waiting_answered(partition, event, answered)
        return out

    async def _waiting_answered(
        self, partition: int, event: SeatsReserved | OrderRejected, answered: list[tuple[str, bytes]]
    ) -> list[EventEnvelope]:
        """Decide the intents that waited for this decision (``_wait_for_decision``), in order."""
        key = order_snapshot(event.program_id, event.order_number)
        waiting = {f: v async for f, v in self._redis.hscan_iter(key, match=f"{WAITING}*")}
        out: list[EventEnvelope] = []
        for field in sorted(waiting):  # UUIDv7 event ids: in the order they were appended
            cause = decode(waiting[field])
            intent = payload_of(cause)
            assert isinstance(intent, CancelRequested | PaymentConfirmed)
            out += await self._decide(event.program_id, event.order_number, intent, cause) or []
            answered.append((key, field))
        if waiting:
            await self._unschedule(partition, event.order_number, event.program_id, event.user_id)
        return out

    async def _decide(
        self, program_id: int, order_number: int, intent: Intent, cause: EventEnvelope | None = None
    ) -> list[EventEnvelope] | None:
        """Let the order decide on ``intent``, save that (seats included), and return the events to
        append; those it decided before when it had already answered. None when it cannot decide
        yet: its decision is not in the log, or its deadline not passed."""
        order = await self._load(program_id, order_number)
        for _ in range(SAVE_ATTEMPTS):
            if order is None:
                if isinstance(intent, DeadlinePassed):  # scheduled, so held once; the log lost it
                    log.error("lifecycle.scheduled_order_not_found", order_number=order_number)
                    return []
                return None
            loaded = Loaded.of(order)
            try:
                _ask(order, intent)
            except Conflict as refused:  # nothing decided; said again below if it was said before
                if refused.code == NOT_DUE:
                    return None
            decided = order.outbox()
            if not decided:
                return [self._wrap(d, cause) for d in _answered_before(order, intent)]
            if await self._save(order, loaded):
                if order.status is not loaded.status:
                    ORDERS_ENDED.labels(outcome=order.status.value).inc()
                return [self._wrap(d, cause) for d in decided]
            order = await self._load(program_id, order_number)  # another process saved first
        log.warning("lifecycle.save_lost", order_number=order_number, attempts=SAVE_ATTEMPTS)
        return []

    async def _save(self, order: Order, loaded: Loaded) -> bool:
        saved = await retrying("save", lambda: save_order(self._scripts, order, loaded, SEAT_ROW_STRIDE, self._ttl_s))
        return saved.changed

    async def _load(self, program_id: int, order_number: int) -> Order | None:
        """The order from its snapshot; from its events in the log when it has none (the slow path)."""
        order = await retrying("load", lambda: load_order(self._redis, program_id, order_number))
        if order is not None:
            return order
        started = time.monotonic()
        key = order_key(order_number)
        partition = await self._publisher.partition_of(self._settings.kafka.topic(Order.topic_family), key)
        envelopes = await retrying("read", lambda: read_aggregate_events(self._settings.kafka, partition, key))
        order = Order.from_log(envelopes)
        log.info(
            "lifecycle.order_read_from_log",
            order_number=order_number,
            found=order is not None,
            seconds=round(time.monotonic() - started, 3),
        )
        return order

    async def _wait_for_decision(self, program_id: int, order_number: int, cause: EventEnvelope) -> None:
        """Keep an intent until the order's decision reaches this partition (``_decided``)."""
        key = order_snapshot(program_id, order_number)
        await retrying("wait", lambda: self._redis.hset(key, f"{WAITING}{cause.event_id}", encode(cause)))
        log.info("lifecycle.intent_waits_for_decision", order_number=order_number, intent=cause.type)

    async def _unschedule(self, partition: int, order_number: int, program_id: int, user_id: int) -> None:
        self._postponed.pop(Due(order_number, program_id, user_id), None)
        key = order_expiries(self._settings.orders.key_prefix, partition)
        await self._redis.zrem(key, order_member(order_number, program_id, user_id))

    @staticmethod
    def _wrap(decided: Decided, cause: EventEnvelope | None) -> EventEnvelope:
        # An expiry has no cause: its event starts a correlation of its own.
        correlation = str(cause.correlation_id) if cause is not None else None
        order = decided.event.aggregate_key()
        log.info("lifecycle.decided", aggregate_id=order, type=decided.event.event_type, correlation_id=correlation)
        return EventEnvelope.wrap(
            decided.event,
            aggregate_version=decided.version,
            event_id=_event_id(decided.event),
            correlation_id=cause.correlation_id if cause is not None else None,
            causation_id=cause.event_id if cause is not None else None,
            occurred_at=decided.occurred_at,
        )

    @property
    def _ttl_s(self) -> int:
        return self._settings.orders.view_ttl_s


def _ask(order: Order, intent: Intent) -> None:
    match intent:
        case CancelRequested():
            order.cancel()
        case PaymentConfirmed():
            order.confirm_payment(intent.payment_id, intent.amount, intent.paid_at)
        case RefundRequested():
            policy = RefundPolicy(
                refundable=intent.refundable, deadline_hours_before_show=intent.deadline_hours_before_show
            )
            order.request_refund(policy, intent.show_starts_at, datetime.now(UTC), intent.by_admin)
        case RefundConfirmed():
            order.confirm_refund(intent.payment_id, intent.refund_number, intent.amount, intent.refunded_at)
        case DeadlinePassed():
            order.expire(intent.now)


def _answered_before(order: Order, intent: Intent) -> list[Decided]:
    """What the order decided when it first met this intent, to append again (a crash may have
    come between the save and the append): a payment's sale or refund; a cancel's or an expiry's
    ending, unless the order was paid (nothing to say) or rejected."""
    if isinstance(intent, PaymentConfirmed):
        paid = order.payment is not None and order.payment.payment_id == intent.payment_id
        before = order.ending() if paid else order.refund_for(intent.payment_id)
    elif isinstance(intent, RefundRequested):
        before = order.refund_for(order.payment.payment_id) if order.payment is not None else None
    elif isinstance(intent, RefundConfirmed):
        before = order.refunded_for(intent.payment_id)
    else:
        before = order.ending() if order.status in ENDINGS_GIVING_BACK else None
    return [before] if before is not None else []


def _event_id(event: DomainEvent) -> uuid.UUID:
    """Derived from the order number: one id per ending (a cancel and an expiry share it), one per
    refunded payment."""
    assert isinstance(event, OrderEvent)
    match event:
        case OrderCancelled() | OrderExpired():
            return derived_event_id(event.order_number, ENDED)
        case RefundRequired():
            return derived_event_id(event.order_number, RefundRequired.event_type, event.payment_id)
        case OrderRefunded():
            return derived_event_id(event.order_number, OrderRefunded.event_type, event.payment_id)
    return derived_event_id(event.order_number, event.event_type)
