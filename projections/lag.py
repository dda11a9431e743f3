"""Consumer lag, measured by the processor that owns the partitions: per partition assigned to it,
the broker's end offset minus its group's committed offset (``damai_consumer_lag_messages``).

Every process measures only what its group assigned to it, so the processes of a group together
report each partition once, and a partition handed to another process stops being reported here
(its series is removed) the next time this one measures. Committed offsets, not the position a
consumer has fetched to, are what count: they are where the group starts again after a crash.

The measuring runs beside the processor every ``observability.lag_interval_s``, on clients of its
own (an admin client for the group's committed offsets, a consumer outside any group for the log's
ends), so it never touches the processor's consumer or its hot path: three small requests a round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from infra.metrics import CONSUMER_LAG

log = structlog.get_logger(__name__)

Assigned = Callable[[], Iterable[tuple[str, int]]]
"""The partitions (topic, partition) the process owns now (aiokafka's and Faust's both are tuples)."""


def lag_of(end: int, committed: int | None, beginning: int) -> int:
    """Messages a group has still to read in one partition. Without a committed offset, or with one
    that retention has passed, it reads from the log's start (``auto_offset_reset=earliest``)."""
    start = beginning if committed is None else max(committed, beginning)
    return max(end - start, 0)


def lags(
    ends: Mapping[TopicPartition, int],
    beginnings: Mapping[TopicPartition, int],
    committed: Mapping[TopicPartition, int | None],
) -> dict[TopicPartition, int]:
    """The lag of every partition whose end is known."""
    return {tp: lag_of(end, committed.get(tp), beginnings.get(tp, 0)) for tp, end in ends.items()}


class ConsumerLag:
    """Measures a group's lag over the partitions ``assigned`` returns, into the gauge."""

    def __init__(self, bootstrap: str, group: str, assigned: Assigned, interval_s: float) -> None:
        self._bootstrap = bootstrap
        self._group = group
        self._assigned = assigned
        self._interval_s = interval_s
        self._reported: set[TopicPartition] = set()
        self._ends: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def run(self) -> None:
        """Measure every interval until cancelled; a broker that does not answer is asked again
        next round (the gauge keeps its last values meanwhile)."""
        # Made here: aiokafka's clients belong to the running loop.
        self._ends = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        started = False
        try:
            while True:
                try:
                    if not started:
                        await self._ends.start()
                        await self._admin.start()
                        started = True
                    await self.measure()
                except (TimeoutError, KafkaError, OSError) as exc:
                    log.warning("lag.unmeasured", group=self._group, error=repr(exc))
                await asyncio.sleep(self._interval_s)
        finally:
            await self._admin.close()
            await self._ends.stop()

    async def measure(self) -> dict[TopicPartition, int]:
        """Set the gauge for the partitions owned now, remove it for those no longer owned."""
        owned = {TopicPartition(topic, partition) for topic, partition in self._assigned()}
        for tp in self._reported - owned:
            CONSUMER_LAG.remove(self._group, tp.topic, str(tp.partition))
        self._reported &= owned
        if not owned:
            return {}
        assert self._ends is not None and self._admin is not None, "measured before run"
        ends = await self._ends.end_offsets(list(owned))
        beginnings = await self._ends.beginning_offsets(list(owned))
        found = await self._admin.list_consumer_group_offsets(self._group, partitions=list(owned))
        committed = {tp: meta.offset if meta.offset >= 0 else None for tp, meta in found.items()}
        measured = lags(ends, beginnings, committed)
        for tp, lag in measured.items():
            CONSUMER_LAG.labels(group=self._group, topic=tp.topic, partition=str(tp.partition)).set(lag)
        self._reported |= set(measured)
        return measured
