"""The command side's aggregates: loaded from a snapshot in Redis or from their events on Kafka,
saved by appending their new events to Kafka (ADR 0006).

A save claims the next versions in the snapshot first (``lua/aggregate_claim.lua``: only one of
two commands that loaded the same version can), appends the events with acks=all, then settles
the claim. A claim that never settles — the append failed, or the process died — is past its
deadline rebuilt from the log, which then holds the events or does not: the log decides, never
the snapshot. So a command sees every event appended for its aggregate before it, whatever the
projectors' lag.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TypeVar, cast

import structlog
from redis.asyncio import Redis

from aggregates.base import Aggregate
from commands.ports import ConcurrentChange
from events.envelope import EventEnvelope
from infra.kafka import EventPublisher, read_aggregate_events
from infra.redis import LuaScripts
from infra.redis_keys import aggregate_snapshot
from infra.settings import Settings

log = structlog.get_logger(__name__)

A = TypeVar("A", bound=Aggregate)

# While another command's claim is pending, a load looks again after this long.
PENDING_POLL_S = 0.02


class AggregateStore:
    def __init__(self, settings: Settings, redis: Redis, scripts: LuaScripts, publisher: EventPublisher):
        self._settings = settings
        self._redis = redis
        self._scripts = scripts
        self._publisher = publisher
        # An append the API gave up on may still be retried by the producer until its request
        # times out; a claim stays pending at least that long before the log is asked instead.
        self.pending_ms = int(settings.api.command_ack_timeout_s * 1000) + 2 * settings.kafka.request_timeout_ms

    def _key(self, aggregate_id: str) -> str:
        return aggregate_snapshot(aggregate_id, self._settings.kafka.topic_prefix)

    async def load(self, cls: type[A], aggregate_id: str) -> A | None:
        key = self._key(aggregate_id)
        deadline = time.monotonic() + self.pending_ms / 1000
        while True:
            state, token, pending_until = cast(
                list[bytes | None], await self._redis.hmget(key, ["state", "token", "pending_until"])
            )
            pending = int(pending_until or 0)
            if pending == 0 and state is not None:
                aggregate = cls.from_snapshot(state)
                if aggregate is not None:
                    return aggregate
            if pending == 0 or pending <= _now_ms() or time.monotonic() > deadline:
                return await self._rebuild(cls, aggregate_id, token)
            await asyncio.sleep(PENDING_POLL_S)

    async def save(self, aggregate: Aggregate, correlation_id: uuid.UUID | None) -> list[uuid.UUID]:
        decided = aggregate.outbox()
        if not decided:
            return []
        key = self._key(aggregate.id)
        state = aggregate.snapshot()
        token = uuid.uuid4().hex
        loaded = aggregate.version - len(decided)
        claimed = await self._scripts["aggregate_claim"](
            keys=[key], args=[loaded, aggregate.version, token, state, _now_ms() + self.pending_ms]
        )
        if not claimed:
            raise ConcurrentChange(
                f"{aggregate.id} changed while this command was decided; retry",
                details={"aggregateId": aggregate.id},
            )
        envelopes = [
            EventEnvelope.wrap(
                d.event, aggregate_version=d.version, occurred_at=d.occurred_at, correlation_id=correlation_id
            )
            for d in decided
        ]
        # Left pending on failure: whether Kafka got the events is for the log to say (see load).
        await self._publisher.append(envelopes, self._settings.api.command_ack_timeout_s)
        await self._scripts["aggregate_settle"](keys=[key], args=[token, aggregate.version, token, state])
        return [e.event_id for e in envelopes]

    async def _rebuild(self, cls: type[A], aggregate_id: str, seen_token: bytes | None) -> A | None:
        """The aggregate from its events on Kafka; the snapshot follows unless someone moved it."""
        started = time.monotonic()
        topic = self._settings.kafka.topic(cls.topic_family)
        partition = await self._publisher.partition_of(topic, aggregate_id)
        envelopes = await read_aggregate_events(self._settings.kafka, partition, aggregate_id)
        aggregate = cls.replay(envelopes)
        if aggregate is not None:
            state = aggregate.snapshot()
            args: list[bytes | str | int] = [seen_token or b"", aggregate.version, uuid.uuid4().hex, state]
            await self._scripts["aggregate_settle"](keys=[self._key(aggregate_id)], args=args)
        log.info(
            "aggregate.rebuilt_from_log",
            aggregate_id=aggregate_id,
            events=len(envelopes),
            seconds=round(time.monotonic() - started, 3),
        )
        return aggregate


def _now_ms() -> int:
    return int(time.time() * 1000)
