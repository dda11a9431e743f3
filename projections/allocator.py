"""The seat allocator: the one writer that decides a program's order requests (issue 11).

A consumer group over ``order-requests`` (keyed per program, so each program's requests sit in one
partition and reach one allocator, in the order the API accepted them). Each fetch is grouped by
program and decided with one ``lua/order_reserve.lua`` call per program; the decisions are in
Redis the moment the script returns (the API's ``Prefer: wait`` and the order view read them
there), then ``SeatsReserved`` / ``OrderRejected`` are appended to ``order`` (acks=all), and only
then are the offsets committed.

At least once, with one outcome: a request fetched again after a crash or a rebalance is decided
again by the script, which answers the decision it stored the first time and changes nothing; its
event is appended again with the same event id (derived from the order number and type), so a
reader that keeps event ids sees it once. The deciding (``Allocation``) is apart from the consumer
(``Allocator``) so that the same decisions can be measured under a Faust agent; ADR 0008 has the
figures and says why the allocator stays a plain aiokafka consumer.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import structlog
from aiokafka import ConsumerRecord
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from events.envelope import EventEnvelope, derived_event_id
from events.order import OrderRejected, OrderRequested, SeatsReserved
from infra.kafka import EventPublisher
from infra.metrics import (
    ALLOCATOR_BATCH_SECONDS,
    ALLOCATOR_DECISIONS,
    ALLOCATOR_LUA_SECONDS,
    DEAD_LETTERS,
)
from infra.redis import LuaScripts
from infra.redis_keys import SEAT_ROW_STRIDE
from infra.settings import Settings
from projections.deciders import Decider, Fetched, append_decided, decoded, retrying
from projections.seat_allocation import Decision, DecisionStatus, reserve

log = structlog.get_logger(__name__)

Request = tuple[EventEnvelope, OrderRequested]


class Allocation:
    """The allocator's deciding, without its consumer: a batch of order-request records in, their
    decisions in Redis and in the log out. The consumer around it fetches the batch before and
    commits its offsets after (``Allocator`` here; a Faust agent in ``bench/allocator_consumers.py``,
    measured against it in ADR 0008)."""

    def __init__(self, settings: Settings, scripts: LuaScripts, publisher: EventPublisher) -> None:
        self._settings = settings
        self._scripts = scripts
        self._publisher = publisher

    async def decide(self, records: Iterable[ConsumerRecord[bytes, bytes]]) -> list[Decision]:
        """Decide the records' requests with one script call per program, in the order of each
        program's records, then append the decision events; returns once Kafka has them all.
        Redis and Kafka outages are waited out: a batch is decided and appended whole."""
        by_program: dict[int, list[Request]] = defaultdict(list)
        for record in records:
            request = self._request(record)
            if request is not None:
                by_program[request[1].program_id].append(request)
        now = datetime.now(UTC)
        decided = await asyncio.gather(
            *(self._decide_program(pid, requests, now) for pid, requests in by_program.items())
        )
        envelopes = [envelope for program in decided for _, envelope in program]
        await append_decided(self._publisher, self._settings, envelopes)
        return [decision for program in decided for decision, _ in program]

    async def _decide_program(
        self, program_id: int, requests: Sequence[Request], now: datetime
    ) -> list[tuple[Decision, EventEnvelope]]:
        now_ms = int(now.timestamp() * 1000)
        try:
            decisions = await self._reserve(program_id, requests, now_ms)
        except ResponseError:
            # The script refused the batch's arguments before writing anything: one request the
            # API should never have accepted. Decide them one by one and set that one aside.
            decided = [await self._decide_alone(program_id, request, now_ms) for request in requests]
            kept = [(r, d) for r, d in zip(requests, decided, strict=True) if d is not None]
            requests, decisions = [r for r, _ in kept], [d for _, d in kept if d is not None]
        out = []
        for (envelope, request), decision in zip(requests, decisions, strict=True):
            ALLOCATOR_DECISIONS.labels(outcome=decision.reason or decision.status, again=str(decision.again)).inc()
            log.info(
                "allocator.decided",
                order_number=request.order_number,
                outcome=decision.reason or decision.status,
                again=decision.again,
                correlation_id=str(envelope.correlation_id),
            )
            out.append((decision, _decision_event(envelope, request, decision, now)))
        return out

    async def _reserve(self, program_id: int, requests: Sequence[Request], now_ms: int) -> list[Decision]:
        ttl_s = self._settings.orders.view_ttl_s
        window_s = self._settings.orders.payment_window_s
        window_ms = int(window_s * 1000) if window_s is not None else None
        requested = [r for _, r in requests]

        async def timed_reserve() -> list[Decision]:
            with ALLOCATOR_LUA_SECONDS.time():
                return await reserve(self._scripts, program_id, requested, now_ms, SEAT_ROW_STRIDE, ttl_s, window_ms)

        return await retrying("reserve", timed_reserve)

    async def _decide_alone(self, program_id: int, request: Request, now_ms: int) -> Decision | None:
        try:
            [decision] = await self._reserve(program_id, [request], now_ms)
        except ResponseError as exc:
            DEAD_LETTERS.labels(consumer_group=self._settings.worker.allocator_group, reason="unapplicable").inc()
            log.error("allocator.request_refused_by_script", order_number=request[1].order_number, error=str(exc))
            return None
        return decision

    def _request(self, record: ConsumerRecord[bytes, bytes]) -> Request | None:
        found = decoded(record, self._settings.worker.allocator_group)
        if found is None or not isinstance(found[1], OrderRequested):
            return None
        return found[0], found[1]


class Allocator(Decider):
    """The allocator's consumer: fetch what is waiting, decide it (``Allocation``), commit."""

    kind = "allocator"

    def __init__(self, settings: Settings, redis: Redis, scripts: LuaScripts, publisher: EventPublisher) -> None:
        super().__init__(
            settings,
            settings.worker.allocator_group,
            [settings.kafka.topic("order-requests")],
            fetch_wait_ms=settings.worker.allocator_poll_ms,
            max_records=settings.worker.allocator_batch_size,
        )
        self._allocation = Allocation(settings, scripts, publisher)

    async def handle(self, fetched: Fetched) -> None:
        await self._allocation.decide(record for records in fetched.values() for record in records)

    def batch_done(self, events: int, seconds: float) -> None:
        super().batch_done(events, seconds)
        ALLOCATOR_BATCH_SECONDS.observe(seconds)


def _decision_event(
    envelope: EventEnvelope, request: OrderRequested, decision: Decision, now: datetime
) -> EventEnvelope:
    event: SeatsReserved | OrderRejected
    if decision.status is DecisionStatus.REJECTED:
        assert decision.reason is not None
        event = OrderRejected(
            order_number=request.order_number,
            user_id=request.user_id,
            program_id=request.program_id,
            show_time_id=request.show_time_id,
            reason=decision.reason,
            requested_at=envelope.occurred_at,
        )
    else:
        # Held, or (deciding again) already ended: the decision was the hold.
        assert decision.total is not None and decision.pay_deadline is not None and decision.hold_sequence is not None
        event = SeatsReserved(
            order_number=request.order_number,
            user_id=request.user_id,
            program_id=request.program_id,
            show_time_id=request.show_time_id,
            tickets=decision.tickets,
            total_amount=decision.total,
            pay_deadline=decision.pay_deadline,
            requested_at=envelope.occurred_at,
            hold_sequence=decision.hold_sequence,
        )
    return EventEnvelope.wrap(
        event,
        aggregate_version=1,
        event_id=derived_event_id(request.order_number, event.event_type),
        correlation_id=envelope.correlation_id,
        causation_id=envelope.event_id,
        occurred_at=now,
    )
