"""An order's whole history, for support staff: every event of the order and of its pay bill, as
the log holds them, in the order they happened.

Read from the log itself (the order's and the bill's partitions, each from its start), not from a
read model: what support sees is what the system decided, whatever a projection made of it. A
partition that holds a hot sale's orders takes a while to read (about a second per 100,000 events
here); this is a support tool, not a buyer's path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from events.envelope import EventEnvelope
from events.order import ORDER_FAMILY, order_key
from events.payment import PAYMENT_FAMILY, pay_bill_key
from infra.kafka import EventPublisher, read_aggregate_events
from infra.settings import KafkaSettings
from queries.shapes import PublicShape


class HistoryEventOut(PublicShape):
    event_id: str
    type: str
    schema_version: int
    aggregate_id: str
    version: int
    occurred_at: datetime
    correlation_id: str | None
    causation_id: str | None
    payload: dict[str, Any]


class OrderHistoryOut(PublicShape):
    order_number: str
    events: list[HistoryEventOut]


async def order_history(settings: KafkaSettings, publisher: EventPublisher, order_number: int) -> OrderHistoryOut:
    """The order's events and its bill's, oldest first; an event the log holds twice, once."""
    envelopes: dict[str, EventEnvelope] = {}
    for family, key in ((ORDER_FAMILY, order_key(order_number)), (PAYMENT_FAMILY, pay_bill_key(order_number))):
        partition = await publisher.partition_of(settings.topic(family), key)
        for envelope in await read_aggregate_events(settings, partition, key):
            envelopes.setdefault(str(envelope.event_id), envelope)
    ordered = sorted(envelopes.values(), key=lambda e: (e.occurred_at, e.aggregate_id, e.aggregate_version))
    return OrderHistoryOut(order_number=str(order_number), events=[_event(e) for e in ordered])


def _event(envelope: EventEnvelope) -> HistoryEventOut:
    return HistoryEventOut(
        event_id=str(envelope.event_id),
        type=envelope.type,
        schema_version=envelope.schema_version,
        aggregate_id=envelope.aggregate_id,
        version=envelope.aggregate_version,
        occurred_at=envelope.occurred_at,
        correlation_id=str(envelope.correlation_id),
        causation_id=str(envelope.causation_id) if envelope.causation_id else None,
        payload=envelope.payload,
    )
