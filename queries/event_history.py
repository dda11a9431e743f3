"""One aggregate's events, in the order its log holds them (``damai events history``).

Read from the log itself, as the order history for support staff is (``queries/order_history.py``):
the aggregate's partition from its start, keeping its key. The family comes from the kind in the
aggregate's key (``order`` in ``order-123``); ``AGGREGATE_FAMILIES`` is that table, and
tests/unit/test_event_history.py holds it equal to every registered event's key and family.
"""

from __future__ import annotations

from events.envelope import EventEnvelope
from events.order import ORDER_FAMILY, ORDER_REQUESTS_FAMILY
from events.payment import PAYMENT_FAMILY
from events.program import PROGRAM_FAMILY
from events.user import USER_FAMILY
from infra.kafka import EventPublisher, read_aggregate_events
from infra.settings import KafkaSettings

AGGREGATE_FAMILIES = {
    # Longest first: ``order-requests-5`` is a program's requests, not an order.
    "order-requests": ORDER_REQUESTS_FAMILY,
    "order": ORDER_FAMILY,
    "payment": PAYMENT_FAMILY,
    "program": PROGRAM_FAMILY,
    "area": "reference",
    "category": "reference",
    "user": USER_FAMILY,
    "mobile": USER_FAMILY,
    "email": USER_FAMILY,
}
"""The topic family of each kind of aggregate, by the kind that starts its key."""


class UnknownAggregate(ValueError):
    """An id whose kind names no aggregate."""


def family_of(aggregate_id: str) -> str:
    """The topic family that holds the aggregate's events (``order-123`` → ``order``)."""
    for kind, family in AGGREGATE_FAMILIES.items():
        if aggregate_id.startswith(f"{kind}-") and len(aggregate_id) > len(kind) + 1:
            return family
    raise UnknownAggregate(f"{aggregate_id!r}: an id is <kind>-<id>, the kind one of {', '.join(AGGREGATE_FAMILIES)}")


async def aggregate_history(settings: KafkaSettings, aggregate_id: str) -> list[EventEnvelope]:
    """The aggregate's events, in log order (each at its current schema version: upcast on reading)."""
    topic = settings.topic(family_of(aggregate_id))
    publisher = EventPublisher(settings)
    await publisher.start()
    try:
        partition = await publisher.partition_of(topic, aggregate_id)
    finally:
        await publisher.stop()
    return await read_aggregate_events(settings, partition, aggregate_id)
