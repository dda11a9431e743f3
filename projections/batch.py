"""What a projector is handed, and the rule for advancing its applied offsets over a batch.

The rule, for each partition a batch touches: the applied offset becomes the batch's highest
offset there unless it is already past it (a replayed batch never moves it back), and a batch
whose lowest offset there is beyond the one after the last applied is a *gap*: the events in
between were never seen here. Offsets whose events were dead-lettered are recorded as applied
(``Projector.skip``), so they never make a gap.

``advance`` is the rule in Python, used by the Postgres offset store (projections/offsets.py).
Its twin in Lua is ``lua/offsets_advance.lua`` (the Redis inventory's offsets, advanced in the
same pipeline as its writes); tests/integration/test_offsets_advance.py drives both with the same
batches and holds them equal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from infra.metrics import PROJECTOR_GAPS

log = structlog.get_logger(__name__)

NO_OFFSET = -1
"""The applied offset of a partition nothing was applied from."""

TopicPartition = tuple[str, int]
T = TypeVar("T")


@dataclass(frozen=True)
class Delivered:
    """Where a record sat in the log."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Positioned(Generic[T]):
    position: Delivered
    item: T


@dataclass(frozen=True)
class Span:
    """The lowest and highest offsets of a batch in one partition."""

    lowest: int
    highest: int


@dataclass(frozen=True)
class Gap:
    """A batch began at ``next_seen``, past the offset after ``last_applied``."""

    topic: str
    partition: int
    last_applied: int
    next_seen: int


def spans(positions: Iterable[Delivered]) -> dict[TopicPartition, Span]:
    """Per partition, in the order first met, the lowest and highest offsets among ``positions``."""
    lowest: dict[TopicPartition, int] = {}
    highest: dict[TopicPartition, int] = {}
    for p in positions:
        tp = (p.topic, p.partition)
        if tp not in lowest:
            lowest[tp] = highest[tp] = p.offset
        elif p.offset < lowest[tp]:
            lowest[tp] = p.offset
        elif p.offset > highest[tp]:
            highest[tp] = p.offset
    return {tp: Span(low, highest[tp]) for tp, low in lowest.items()}


def advance(
    applied: Mapping[TopicPartition, int], batch: Mapping[TopicPartition, Span]
) -> tuple[dict[TopicPartition, int], list[Gap]]:
    """The applied offsets of the partitions ``batch`` touches once it is applied, and its gaps
    (in the order of ``batch``). A partition ``applied`` does not name had nothing applied."""
    advanced: dict[TopicPartition, int] = {}
    gaps: list[Gap] = []
    for (topic, partition), span in batch.items():
        last = applied.get((topic, partition), NO_OFFSET)
        if span.lowest > last + 1:
            gaps.append(Gap(topic, partition, last, span.lowest))
        advanced[topic, partition] = max(last, span.highest)
    return advanced, gaps


def report_gap(projector: str, gap: Gap) -> None:
    """Offsets are consecutive (no transactions, no compaction), so the events before the gap were
    never seen here: acked without being applied and committed past (ADR 0003), or removed by
    retention before a rewind could read them. Nothing here can fetch them again; the projection
    has to be rebuilt by replay (docs/operations.md)."""
    PROJECTOR_GAPS.labels(projector=projector).inc()
    log.error(
        "projector.gap",
        projector=projector,
        topic=gap.topic,
        partition=gap.partition,
        last_applied=gap.last_applied,
        next_seen=gap.next_seen,
        missed=gap.next_seen - gap.last_applied - 1,
    )
