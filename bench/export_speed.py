"""Export speed (docs/analytics.md): 100,000 ``SeatsReserved`` appended to an isolated namespace's
``order`` topic, then exported to JSON Lines and to Parquet; events/s of each, file sizes.

    .venv/bin/python -m bench.export_speed [events]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from cli.provision import provision_namespace, remove_namespace
from events.envelope import EventEnvelope
from events.order import HeldTicket, SeatsReserved
from infra.kafka import EventPublisher
from infra.settings import get_settings
from projections.export import ExportFormat, Window, export_family

APPEND_CHUNK = 5_000


def reserved(n: int, at: datetime) -> EventEnvelope:
    tickets = tuple(
        HeldTicket(seat_id=n * 10 + i + 1, ticket_category_id=7, row=1 + n % 40, column=1 + i, price=Decimal("880.00"))
        for i in range(2)
    )
    event = SeatsReserved(
        order_number=1_000_000 + n,
        user_id=10_000 + n % 5_000,
        program_id=1 + n % 20,
        show_time_id=100 + n % 20,
        tickets=tickets,
        total_amount=Decimal("1760.00"),
        pay_deadline=at + timedelta(minutes=15),
        requested_at=at,
        hold_sequence=n + 1,
    )
    return EventEnvelope.wrap(event, aggregate_version=1, occurred_at=at)


async def main(events: int) -> None:
    settings = get_settings().namespaced(f"b{uuid.uuid4().hex[:10]}")
    await provision_namespace(settings)
    publisher = EventPublisher(settings.kafka)
    await publisher.start()
    try:
        now = datetime.now(UTC)
        for start in range(0, events, APPEND_CHUNK):
            await publisher.publish_many([reserved(n, now) for n in range(start, min(start + APPEND_CHUNK, events))])
        window = Window(now - timedelta(hours=1), now + timedelta(hours=1))
        with tempfile.TemporaryDirectory() as out:
            for fmt in (ExportFormat.JSONL, ExportFormat.PARQUET):
                started = time.perf_counter()
                done = await export_family(settings.kafka, "order", window, fmt, Path(out))
                seconds = time.perf_counter() - started
                size = done.path.stat().st_size / 1e6
                rate = done.events / seconds
                print(f"{fmt.value}: {done.events} events in {seconds:.2f}s = {rate:,.0f} events/s, {size:.1f} MB")
    finally:
        await publisher.stop()
        await remove_namespace(settings)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
