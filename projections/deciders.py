"""What the processors that decide (the seat allocator, the order lifecycle) share: how they wait
out an outage, and how one runs in the foreground.

Unlike the projectors (Faust agents, ``projections/projector.py``), these are plain aiokafka
consumer groups that decide with Redis scripts and append their decisions (ADR 0008).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from commands.ports import LogUnavailable
from events.base import DomainEvent
from events.envelope import EventEnvelope
from events.serialization import UndecodableEvent, decode, payload_of
from infra.kafka import EventPublisher
from infra.metrics import DEAD_LETTERS, serve_metrics
from infra.redis import REDIS_ERRORS, LuaScripts, create_redis
from infra.settings import Settings
from projections.lag import ConsumerLag

log = structlog.get_logger(__name__)

T = TypeVar("T")

RETRYABLE: tuple[type[BaseException], ...] = (LogUnavailable, *REDIS_ERRORS)
REFUSED = "ERR_BAD_ARGUMENT"
RETRY_FIRST_S = 0.1
RETRY_LONGEST_S = 2.0


def refused(exc: BaseException) -> bool:
    """A script refused its arguments (and wrote nothing): retrying cannot help."""
    return isinstance(exc, ResponseError) and REFUSED in str(exc)


async def retrying(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """``call()`` until Redis and Kafka answer: a batch is decided and appended whole, or the
    processor waits (backing off from 0.1 s to 2 s). A refusal is raised at once."""
    pause = RETRY_FIRST_S
    while True:
        try:
            return await call()
        except RETRYABLE as exc:
            if refused(exc):
                raise
            log.warning("decider.retrying", step=what, error=repr(exc), retry_in_s=pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_LONGEST_S)


def group_consumer(settings: Settings, group: str, client_id: str, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """A member of a decider's consumer group: offsets committed by hand, after the decisions are
    in the log; from the earliest offset when the group has none."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=group,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(settings.worker.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.worker.heartbeat_interval_s * 1000),
        rebalance_timeout_ms=int(settings.worker.rebalance_timeout_s * 1000),
        **options,
    )


def decoded(record: ConsumerRecord[bytes, bytes], group: str) -> tuple[EventEnvelope, DomainEvent] | None:
    """The record's envelope and event; None, counted and logged, for one no decider can read
    (it is never retried for ever)."""
    try:
        envelope = decode(record.value or b"")
        return envelope, payload_of(envelope)
    except UndecodableEvent as exc:
        DEAD_LETTERS.labels(consumer_group=group, reason="undecodable").inc()
        log.error("decider.undecodable", group=group, partition=record.partition, offset=record.offset, error=str(exc))
        return None


class Decider(Protocol):
    kind: str
    """Its kind of processor: the key of its port in ``observability.metrics_ports``."""
    group: str

    async def run(self) -> None: ...

    def stop(self) -> None: ...

    def assignment(self) -> Iterable[tuple[str, int]]:
        """The partitions its consumer owns now."""
        ...


async def run_decider(
    settings: Settings, make: Callable[[Settings, Redis, LuaScripts, EventPublisher], Decider]
) -> None:
    """Run one decider in the foreground until SIGTERM/SIGINT, with its Redis and publisher, its
    /metrics and its consumer lag measured beside it."""
    redis = create_redis(settings.redis)
    scripts = LuaScripts(redis)
    await scripts.preload(redis)
    publisher = EventPublisher(settings.kafka)
    await publisher.start()
    decider = make(settings, redis, scripts, publisher)
    serve_metrics(settings, decider.kind)
    lag = ConsumerLag(
        settings.kafka.bootstrap, decider.group, decider.assignment, settings.observability.lag_interval_s
    )
    measuring = asyncio.create_task(lag.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, decider.stop)
    try:
        await decider.run()
    finally:
        measuring.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await measuring
        await publisher.stop()
        await redis.aclose()
