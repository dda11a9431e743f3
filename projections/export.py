"""The event log out for analysts: one row per event, in Parquet or JSON Lines, one file per topic.

A row is the envelope's fields, where the event sits in the log (topic, partition, offset), and the
payload as JSON text: the payload exactly as the log holds it, at the schema version it was written
with (``schema_version`` says which; nothing is upcast on the way out). Personal data in an event
is sealed (docs/personal-data.md), so it stays sealed in an export: the export never opens a token.

Which events: those whose envelope's ``occurred_at`` falls in ``[start, end)`` — the domain's time,
not the record's timestamp (an event is appended a moment after it occurred, and a replay's copy
keeps the original's timestamps). Every partition is read from its start to its end as it stood
when the export began; ``occurred_at`` is not ordered across a partition strictly enough to seek by.

Memory stays bounded: rows are written out every ``ROW_GROUP_ROWS`` (one Parquet row group each).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from commands.ports import LogUnavailable
from infra.kafka import LOG_READ_BATCH
from infra.settings import KafkaSettings

ROW_GROUP_ROWS = 50_000
"""Rows held before they are written out: a Parquet row group (tens of MB of payloads at most)."""


class ExportFormat(StrEnum):
    PARQUET = "parquet"
    JSONL = "jsonl"


SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("schema_version", pa.int32()),
        ("aggregate_id", pa.string()),
        ("aggregate_version", pa.int64()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("correlation_id", pa.string()),
        ("causation_id", pa.string()),
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("payload", pa.string()),
    ]
)
COLUMNS = SCHEMA.names


@dataclass(frozen=True)
class Window:
    """``[start, end)`` of ``occurred_at``; both aware datetimes."""

    start: datetime
    end: datetime

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class Exported:
    family: str
    path: Path
    read: int
    """Records read from the topic."""
    events: int
    """Rows written: the records whose event occurred in the window."""
    unreadable: int
    """Records that are no envelope (a tombstone, bytes that are not JSON): left out."""


def event_row(record: ConsumerRecord[bytes, bytes], window: Window) -> dict[str, Any] | None:
    """The record's row when its event occurred in ``window``; None otherwise. ``ValueError`` for a
    record that is no envelope."""
    if record.value is None:
        raise ValueError("a tombstone is no event")
    try:
        envelope = orjson.loads(record.value)
        occurred_at = datetime.fromisoformat(envelope["occurred_at"])
        if not window.holds(occurred_at):
            return None
        return {
            "event_id": envelope["event_id"],
            "type": envelope["type"],
            "schema_version": int(envelope["schema_version"]),
            "aggregate_id": envelope["aggregate_id"],
            "aggregate_version": int(envelope["aggregate_version"]),
            "occurred_at": occurred_at,
            "correlation_id": envelope["correlation_id"],
            "causation_id": envelope.get("causation_id"),
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            # The writer's bytes again: orjson keeps the keys' order and writes no spaces, as the
            # publisher's orjson did (tests/integration/test_events_export.py holds them equal).
            "payload": orjson.dumps(envelope["payload"]).decode(),
        }
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(str(exc)) from exc


class Sink(Protocol):
    def write(self, rows: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


class ParquetSink:
    def __init__(self, path: Path):
        self._writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")

    def write(self, rows: list[dict[str, Any]]) -> None:
        self._writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), row_group_size=max(len(rows), 1))

    def close(self) -> None:
        self._writer.close()


class JsonlSink:
    """The same columns, one JSON object a line; ``occurred_at`` in ISO 8601, ``payload`` a string."""

    def __init__(self, path: Path):
        self._file: IO[bytes] = path.open("wb")

    def write(self, rows: list[dict[str, Any]]) -> None:
        self._file.write(b"".join(orjson.dumps(row) + b"\n" for row in rows))

    def close(self) -> None:
        self._file.close()


def open_sink(out_dir: Path, family: str, fmt: ExportFormat) -> tuple[Path, Sink]:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{family}.{fmt.value}"
    return path, ParquetSink(path) if fmt is ExportFormat.PARQUET else JsonlSink(path)


async def export_family(
    settings: KafkaSettings, family: str, window: Window, fmt: ExportFormat, out_dir: Path
) -> Exported:
    """Write the family's events that occurred in ``window`` to ``out_dir/<family>.<format>``."""
    path, sink = open_sink(out_dir, family, fmt)
    read = written = unreadable = 0
    pending: list[dict[str, Any]] = []
    try:
        async for records in topic_batches(settings, family):
            read += len(records)
            for record in records:
                try:
                    row = event_row(record, window)
                except ValueError:
                    unreadable += 1
                    continue
                if row is not None:
                    pending.append(row)
            if len(pending) >= ROW_GROUP_ROWS:
                sink.write(pending)
                written += len(pending)
                pending = []
        if pending or not written:
            sink.write(pending)  # an empty export still has its columns
            written += len(pending)
    finally:
        sink.close()
    return Exported(family, path, read, written, unreadable)


async def topic_batches(settings: KafkaSettings, family: str) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
    """Every partition of the family's topic, from its start to its end as it is now, in batches.
    ``LogUnavailable`` when the brokers do not answer in time."""
    topic = settings.topic(family)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=settings.request_timeout_ms,
        client_id="damai-export",
    )
    try:
        await consumer.start()
        partitions = [TopicPartition(topic, p) for p in range(settings.topics[family].partitions)]
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        left = {tp: end for tp, end in ends.items() if end > starts[tp]}
        consumer.assign(list(left))
        for tp in left:
            consumer.seek(tp, starts[tp])
        while left:
            fetched = await consumer.getmany(
                *left, timeout_ms=settings.request_timeout_ms, max_records=LOG_READ_BATCH
            )
            batch = [r for tp, records in fetched.items() for r in records if r.offset < left.get(tp, 0)]
            if batch:
                yield batch
            for tp in list(left):
                if await consumer.position(tp) >= left[tp]:
                    del left[tp]
                    consumer.pause(tp)
    except KafkaError as exc:
        raise LogUnavailable("the event log could not be read in time; retry") from exc
    finally:
        await consumer.stop()


def families_known(settings: KafkaSettings, asked: Iterable[str]) -> list[str]:
    """The asked families, each checked against the settings' topics (``ValueError`` naming the known)."""
    families = list(asked)
    unknown = [f for f in families if f not in settings.topics]
    if unknown:
        raise ValueError(f"unknown topic families {unknown}; known: {', '.join(settings.topics)}")
    return families
