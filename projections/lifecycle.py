"""An order's life after its seats are held: cancelled by its buyer, expired at its payment deadline,
or paid (issue 11, docs/orders.md).

A consumer group over ``order`` (keyed per order, so one lifecycle owns each order's partition).
It schedules every hold's expiry in Redis (a sorted set per partition, scored by the payment
deadline), and ends orders three ways: a ``CancelRequested`` the API appended, a deadline that
passed (checked every ``lifecycle_tick_ms``), a ``PaymentConfirmed``. Whichever comes first wins,
and the others change nothing: the ending is decided by ``lua/order_release.lua``, atomically on the
program's keys, which ends a held order once and answers how it ended. The event appended follows
that answer, with an id derived from the order number, so a crash and a retry, or two processes
racing across a rebalance, append one outcome.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from redis.asyncio import Redis

from events.base import DomainEvent
from events.envelope import EventEnvelope, derived_event_id
from events.order import (
    CancelRequested,
    OrderCancelled,
    OrderExpired,
    OrderPaid,
    PaymentConfirmed,
    RefundRequired,
    SeatsReserved,
)
from infra.kafka import EventPublisher
from infra.metrics import ORDERS_ENDED
from infra.redis import LuaScripts
from infra.redis_keys import SEAT_ROW_STRIDE, order_expiries
from infra.settings import Settings
from projections.deciders import decoded, group_consumer, retrying
from projections.seat_allocation import DecisionStatus, Ending, finish

log = structlog.get_logger(__name__)

EXPIRIES_PER_TICK = 500
ENDED = "OrderEnded"
"""The event id of an order's one ending (cancelled or expired) derives from this."""


@dataclass(frozen=True)
class Due:
    order_number: int
    program_id: int
    user_id: int


def _member(order_number: int, program_id: int, user_id: int) -> str:
    return f"{order_number}:{program_id}:{user_id}"


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


class Lifecycle:
    def __init__(self, settings: Settings, redis: Redis, scripts: LuaScripts, publisher: EventPublisher) -> None:
        self._settings = settings
        self._redis = redis
        self._scripts = scripts
        self._publisher = publisher
        self._stopping = asyncio.Event()
        self._assignment = _Assignment()
        self._consumer = group_consumer(settings, settings.worker.lifecycle_group, "damai-lifecycle")

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        self._consumer.subscribe([self._settings.kafka.topic("order")], listener=self._assignment)
        await self._consumer.start()
        log.info("lifecycle.started", group=self._settings.worker.lifecycle_group)
        tick_s = self._settings.worker.lifecycle_tick_ms / 1000
        next_tick = 0.0
        try:
            while not self._stopping.is_set():
                fetched = await self._consumer.getmany(timeout_ms=self._settings.worker.lifecycle_tick_ms)
                if fetched:
                    await self.handle(fetched)
                if time.monotonic() >= next_tick:
                    await self.expire_due()
                    next_tick = time.monotonic() + tick_s
        finally:
            await self._consumer.stop()

    async def handle(self, fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Apply a fetch in order, append what it ended, then commit."""
        out: list[EventEnvelope] = []
        for tp, records in fetched.items():
            for record in records:
                found = decoded(record, self._settings.worker.lifecycle_group)
                if found is not None:
                    out += await self._apply(tp.partition, *found)
        await self._append(out)
        await self._consumer.commit({tp: records[-1].offset + 1 for tp, records in fetched.items() if records})

    async def expire_due(self) -> list[EventEnvelope]:
        """End every hold of this process's partitions whose payment deadline has passed."""
        now_ms = int(time.time() * 1000)
        ended: list[EventEnvelope] = []
        for partition in sorted(self._assignment.partitions):
            key = order_expiries(self._settings.orders.key_prefix, partition)
            due = await self._redis.zrangebyscore(key, "-inf", now_ms, start=0, num=EXPIRIES_PER_TICK)
            if not due:
                continue
            out: list[EventEnvelope] = []
            for member in due:
                out += await self._end(_due(member), Ending.EXPIRED, causation=None, correlation=None)
            await self._append(out)
            await self._redis.zrem(key, *due)
            ended += out
        return ended

    async def _apply(self, partition: int, envelope: EventEnvelope, event: DomainEvent) -> list[EventEnvelope]:
        match event:
            case SeatsReserved():
                key = order_expiries(self._settings.orders.key_prefix, partition)
                deadline_ms = int(event.pay_deadline.timestamp() * 1000)
                await self._redis.zadd(key, {_member(event.order_number, event.program_id, event.user_id): deadline_ms})
                return []
            case CancelRequested():
                order = Due(event.order_number, event.program_id, event.user_id)
                await self._unschedule(partition, order)
                return await self._end(order, Ending.CANCELLED, envelope.event_id, envelope.correlation_id)
            case PaymentConfirmed():
                order = Due(event.order_number, event.program_id, event.user_id)
                await self._unschedule(partition, order)
                return await self._paid(order, event, envelope)
        return []

    async def _unschedule(self, partition: int, order: Due) -> None:
        key = order_expiries(self._settings.orders.key_prefix, partition)
        await self._redis.zrem(key, _member(order.order_number, order.program_id, order.user_id))

    async def _end(
        self, order: Due, ending: Ending, causation: uuid.UUID | None, correlation: uuid.UUID | None
    ) -> list[EventEnvelope]:
        """Cancel or expire the order if it is still held; append how it ended either way (the
        same event, the same id), unless it was paid."""
        ended = await retrying(
            "finish",
            lambda: finish(self._scripts, order.program_id, order.order_number, ending, SEAT_ROW_STRIDE, self._ttl_s),
        )
        if ended.status not in (DecisionStatus.CANCELLED, DecisionStatus.EXPIRED):
            return []
        if ended.changed:
            ORDERS_ENDED.labels(outcome=ended.status.value).inc()
        kind = OrderCancelled if ended.status is DecisionStatus.CANCELLED else OrderExpired
        fact = kind(order_number=order.order_number, user_id=order.user_id, program_id=order.program_id)
        return [
            EventEnvelope.wrap(
                fact,
                aggregate_version=2,
                event_id=derived_event_id(order.order_number, ENDED),
                correlation_id=correlation,
                causation_id=causation,
                occurred_at=datetime.now(UTC),
            )
        ]

    async def _paid(self, order: Due, event: PaymentConfirmed, envelope: EventEnvelope) -> list[EventEnvelope]:
        ended = await retrying(
            "finish",
            lambda: finish(
                self._scripts, order.program_id, order.order_number, Ending.SOLD, SEAT_ROW_STRIDE, self._ttl_s
            ),
        )
        now = datetime.now(UTC)
        if ended.status is DecisionStatus.SOLD:
            if ended.changed:
                ORDERS_ENDED.labels(outcome="paid").inc()
            paid = OrderPaid(order_number=order.order_number, user_id=order.user_id, program_id=order.program_id)
            return [
                EventEnvelope.wrap(
                    paid,
                    aggregate_version=2,
                    event_id=derived_event_id(order.order_number, OrderPaid.event_type),
                    correlation_id=envelope.correlation_id,
                    causation_id=envelope.event_id,
                    occurred_at=now,
                )
            ]
        # Paid after it was cancelled or expired: the money goes back (the payments issue refunds).
        refund = RefundRequired(
            order_number=order.order_number,
            user_id=order.user_id,
            program_id=order.program_id,
            payment_id=event.payment_id,
            amount=event.amount,
        )
        return [
            EventEnvelope.wrap(
                refund,
                aggregate_version=3,
                event_id=derived_event_id(order.order_number, RefundRequired.event_type, event.payment_id),
                correlation_id=envelope.correlation_id,
                causation_id=envelope.event_id,
                occurred_at=now,
            )
        ]

    @property
    def _ttl_s(self) -> int:
        return self._settings.orders.view_ttl_s

    async def _append(self, envelopes: list[EventEnvelope]) -> None:
        if envelopes:
            timeout_s = self._settings.api.command_ack_timeout_s
            await retrying("append", lambda: self._publisher.append(envelopes, timeout_s))
