"""``damai events export`` on a real log (issue 13): orders and a user appended to an isolated
namespace, exported to Parquet and JSON Lines; the rows round-trip (count and checksum of the
payloads as the log holds them), the window is on ``occurred_at``, personal data stays sealed, and
docs/analytics.md's DuckDB query counts the tickets sold per show time per hour."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest
from aiokafka import TopicPartition

from events.envelope import EventEnvelope
from events.order import HeldTicket, OrderPaid, OrderRefunded, SeatsReserved
from events.user import UserRegistered
from infra.kafka import EventPublisher, end_offsets, partition_batches
from infra.personal_data.data_keys import DataKey, UserDataKeys
from infra.personal_data.secret import Secret
from infra.settings import Settings
from projections.export import ExportFormat, Window, export_family

ANALYTICS_DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"
HOUR = datetime(2026, 12, 1, 10, tzinfo=UTC)
WINDOW = Window(HOUR - timedelta(hours=1), HOUR + timedelta(hours=3))
SHOW_A, SHOW_B, PROGRAM, USER = 9001, 9002, 7001, 42
MOBILE = "13800138000"
PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def held(order_number: int, show_time_id: int, tickets: int, at: datetime) -> EventEnvelope:
    reserved = SeatsReserved(
        order_number=order_number,
        user_id=USER,
        program_id=PROGRAM,
        show_time_id=show_time_id,
        tickets=tuple(HeldTicket(ticket_category_id=1, price=Decimal("380.00")) for _ in range(tickets)),
        total_amount=Decimal("380.00") * tickets,
        pay_deadline=at + timedelta(minutes=15),
        requested_at=at,
        hold_sequence=order_number,
    )
    return EventEnvelope.wrap(reserved, aggregate_version=1, occurred_at=at)


def paid(order_number: int, at: datetime) -> EventEnvelope:
    event = OrderPaid(order_number=order_number, user_id=USER, program_id=PROGRAM, payment_id=f"p{order_number}")
    return EventEnvelope.wrap(event, aggregate_version=2, occurred_at=at)


def refunded(order_number: int, at: datetime) -> EventEnvelope:
    event = OrderRefunded(
        order_number=order_number,
        user_id=USER,
        program_id=PROGRAM,
        payment_id=f"p{order_number}",
        refund_number=f"r{order_number}",
        amount=Decimal("380.00"),
        refunded_at=at,
    )
    return EventEnvelope.wrap(event, aggregate_version=3, occurred_at=at)


def sale() -> list[EventEnvelope]:
    """Show A: 2 + 3 tickets paid in the 10:00 hour, 1 in the 11:00 hour, 4 paid then refunded;
    show B: 2 paid at 10:00; one hold never paid; one sale before the window."""
    at = HOUR + timedelta(minutes=5)
    return [
        held(1, SHOW_A, 2, at),
        paid(1, at + timedelta(minutes=1)),
        held(2, SHOW_A, 3, at),
        paid(2, at + timedelta(minutes=20)),
        held(2, SHOW_A, 3, at),  # decided again: the same decision twice in the log
        held(3, SHOW_A, 1, at),
        paid(3, HOUR + timedelta(hours=1, minutes=2)),
        held(4, SHOW_B, 2, at),
        paid(4, at + timedelta(minutes=30)),
        held(5, SHOW_B, 1, at),
        held(6, SHOW_A, 4, at),
        paid(6, at + timedelta(minutes=3)),
        refunded(6, at + timedelta(minutes=40)),
        held(7, SHOW_A, 2, HOUR - timedelta(hours=2)),
        paid(7, HOUR - timedelta(hours=2)),
    ]


async def append(settings: Settings, envelopes: list[EventEnvelope]) -> None:
    publisher = EventPublisher(settings.kafka)
    await publisher.start()
    try:
        await publisher.publish_many(envelopes)
    finally:
        await publisher.stop()


async def payloads_in_log(settings: Settings, family: str) -> dict[str, bytes]:
    """Each record's payload bytes as the log holds them (the envelope's last field), by event id."""
    found = {}
    topic = settings.kafka.topic(family)
    ends = await end_offsets(settings.kafka, topic, settings.kafka.topics[family].partitions)
    for partition, end in ends.items():
        async for records in partition_batches(settings.kafka, TopicPartition(topic, partition), end):
            for record in records:
                value = record.value or b""
                event_id = re.search(rb'"event_id":"([^"]+)"', value)
                assert event_id is not None and value.endswith(b"}")
                found[event_id.group(1).decode()] = value[value.index(b'"payload":') + len(b'"payload":') : -1]
    return found


def exported_rows(path: Path, fmt: ExportFormat) -> list[dict[str, Any]]:
    if fmt is ExportFormat.PARQUET:
        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        return rows
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def digest(payloads: list[bytes]) -> str:
    return hashlib.sha256(b"\n".join(sorted(payloads))).hexdigest()


def doc_query() -> str:
    """The query docs/analytics.md shows (the sql block after the marker naming this test)."""
    text = ANALYTICS_DOC.read_text(encoding="utf-8")
    after = text.split("<!-- tests/integration/test_events_export.py runs this block", 1)[1]
    return after.split("```sql\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("fmt", list(ExportFormat))
async def test_an_export_holds_each_event_in_the_window_once_with_its_payload_as_the_log_holds_it(
    isolated: Settings, tmp_path, fmt: ExportFormat
):
    envelopes = sale()
    await append(isolated, envelopes)

    exported = await export_family(isolated.kafka, "order", WINDOW, fmt, tmp_path)

    rows = exported_rows(exported.path, fmt)
    in_log = await payloads_in_log(isolated, "order")
    inside = [e for e in envelopes if WINDOW.holds(e.occurred_at)]
    assert (exported.read, exported.events, len(rows)) == (len(envelopes), len(inside), len(inside))
    assert digest([r["payload"].encode() for r in rows]) == digest([in_log[str(e.event_id)] for e in inside])
    first = next(r for r in rows if r["event_id"] == str(inside[0].event_id))
    assert (first["type"], first["aggregate_id"], first["aggregate_version"]) == ("SeatsReserved", "order-1", 1)
    assert (first["topic"], first["correlation_id"]) == (isolated.kafka.topic("order"), str(inside[0].correlation_id))


async def test_an_export_leaves_personal_data_sealed(isolated: Settings, tmp_path):
    token = UserDataKeys(USER, [DataKey.generate()]).encrypt("mobile", Secret(MOBILE))
    registered = UserRegistered(
        user_id=USER, mobile_cipher=token, mobile_blind="ab" * 32, password_hash=PASSWORD_HASH
    )
    await append(isolated, [EventEnvelope.wrap(registered, aggregate_version=1, occurred_at=HOUR)])

    for fmt in ExportFormat:
        exported = await export_family(isolated.kafka, "user", WINDOW, fmt, tmp_path / fmt.value)
        [row] = exported_rows(exported.path, fmt)
        assert token in row["payload"]
        assert MOBILE.encode() not in exported.path.read_bytes()


@pytest.mark.parametrize("fmt", list(ExportFormat))
async def test_the_documented_duckdb_query_counts_tickets_sold_per_show_time_per_hour(
    isolated: Settings, tmp_path, fmt: ExportFormat
):
    await append(isolated, sale())
    exported = await export_family(isolated.kafka, "order", WINDOW, fmt, tmp_path)
    reader = "read_parquet" if fmt is ExportFormat.PARQUET else "read_json"
    db = duckdb.connect()
    db.execute(f"CREATE VIEW order_events AS SELECT * FROM {reader}('{exported.path}')")
    db.execute("SET TimeZone = 'UTC'")

    result = db.execute(doc_query()).fetchall()

    assert [(show, hour.astimezone(UTC), tickets, orders) for show, hour, tickets, orders in result] == [
        (str(SHOW_A), HOUR, 5, 2),
        (str(SHOW_A), HOUR + timedelta(hours=1), 1, 1),
        (str(SHOW_B), HOUR, 2, 1),
    ]
