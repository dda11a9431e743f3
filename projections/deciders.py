"""What the processors that decide (the seat allocator, the order lifecycle, the payment processor)
share: their consumer (``Decider``: fetch, decide, commit, count, the chores between fetches), how
they wait out an outage and append what they decided, and how one runs in the foreground.

Unlike the projectors (Faust agents, ``projections/projector.py``), these are plain aiokafka
consumer groups that decide with Redis scripts and append their decisions (ADR 0008).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from commands.ports import LogUnavailable
from events.base import DomainEvent
from events.envelope import EventEnvelope
from events.serialization import UndecodableEvent, decode, payload_of
from infra.collector import tune_for_batches
from infra.kafka import EventPublisher
from infra.metrics import DEAD_LETTERS, ProcessorMetrics, serve_metrics
from infra.redis import REDIS_ERRORS, LuaScripts, create_redis
from infra.settings import Settings
from projections.lag import ConsumerLag

log = structlog.get_logger(__name__)

T = TypeVar("T")
Fetched = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
"""One fetch of a decider's consumer: each partition's records, in order."""

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


async def append_decided(publisher: EventPublisher, settings: Settings, envelopes: list[EventEnvelope]) -> None:
    """Append a decider's events, waiting Kafka out until it takes them all: a decision already in
    Redis must reach the log."""
    if envelopes:
        timeout_s = settings.api.command_ack_timeout_s
        await retrying("append", lambda: publisher.append(envelopes, timeout_s))


def group_consumer(settings: Settings, group: str, client_id: str, **options: Any) -> AIOKafkaConsumer:
    """A member of a decider's consumer group, subscribed by ``Decider.run``: offsets committed by
    hand, after the decisions are in the log; from the earliest offset when the group has none."""
    return AIOKafkaConsumer(
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


@dataclass
class Chore:
    """Work a decider does between its fetches: again once ``every_s`` has passed since it last
    finished (0: after every fetch); the first time after the first fetch."""

    work: Callable[[], Awaitable[object]]
    every_s: float
    _due_at: float = 0.0

    async def run_if_due(self) -> None:
        if time.monotonic() >= self._due_at:
            await self.work()
            self._due_at = time.monotonic() + self.every_s


class Decider(ABC):
    """A decider's consumer, one member of its group: fetch what waits in its partitions, decide it
    (``handle``, which returns once the decisions are in the log), only then commit the fetch's
    offsets and count the batch (``damai_processor_*``), then do the chores that are due; until
    ``stop``. A subclass holds only its deciding."""

    kind: ClassVar[str]
    """Its kind of processor: the key of its port in ``observability.metrics_ports``, the
    ``processor`` label of its metrics, its client id (``damai-<kind>``) and its first log event
    (``<kind>.started``)."""

    def __init__(
        self,
        settings: Settings,
        group: str,
        topics: Sequence[str],
        *,
        fetch_wait_ms: int,
        max_records: int | None = None,
        listener: ConsumerRebalanceListener | None = None,
    ) -> None:
        self._settings = settings
        self.group = group
        self._topics = list(topics)
        self._listener = listener
        self._fetch_wait_ms = fetch_wait_ms
        self._max_records = max_records
        self._stopping = asyncio.Event()
        self._metrics = ProcessorMetrics(group, self.kind)
        options = {} if max_records is None else {"max_poll_records": max_records}
        self._consumer = group_consumer(settings, group, f"damai-{self.kind}", **options)
        self._log = structlog.get_logger(type(self).__module__)

    @abstractmethod
    async def handle(self, fetched: Fetched) -> None:
        """Decide a fetch's records, in each partition's order, and append the decisions; return
        once the log has them (outages waited out: ``retrying``)."""

    def chores(self) -> list[Chore]:
        """What it does between fetches, in this order; nothing unless a decider says."""
        return []

    def batch_done(self, events: int, seconds: float) -> None:
        """A fetch of ``events`` records decided and committed in ``seconds``."""
        self._metrics.batch(events, seconds)

    def stop(self) -> None:
        self._stopping.set()

    def assignment(self) -> set[TopicPartition]:
        """The partitions its consumer owns now."""
        assigned: set[TopicPartition] = self._consumer.assignment()
        return assigned

    async def run(self) -> None:
        """Decide until ``stop``: offsets are committed only after their decisions are in the log."""
        self._consumer.subscribe(self._topics, listener=self._listener)
        await self._consumer.start()
        self._log.info(f"{self.kind}.started", group=self.group)
        chores = self.chores()
        try:
            while not self._stopping.is_set():
                fetched = await self._consumer.getmany(timeout_ms=self._fetch_wait_ms, max_records=self._max_records)
                if fetched:
                    await self._take(fetched)
                for chore in chores:
                    await chore.run_if_due()
        finally:
            await self._consumer.stop()

    async def _take(self, fetched: Fetched) -> None:
        started = time.perf_counter()
        await self.handle(fetched)
        await self._consumer.commit({tp: records[-1].offset + 1 for tp, records in fetched.items() if records})
        self.batch_done(sum(len(records) for records in fetched.values()), time.perf_counter() - started)


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
    tune_for_batches()
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
