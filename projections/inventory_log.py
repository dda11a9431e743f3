"""A program's purchase state as its log describes it: the Python twin of the scripts that write it.

The catalogue events of ``program-<id>`` (the inventory, as ``lua/inventory_apply.lua`` applies
them), the program's order requests (the ID documents' blind indexes a held order claims, which no
other event carries), and the order decisions and endings (as ``lua/order_reserve.lua`` and
``lua/order_release.lua`` leave them). The scripts derive every key from the program's hash tag, so
they cannot replay into scratch keys; ``projections/rebuild_inventory.py`` writes this state instead,
and ``tests/e2e/test_rebuild_inventory.py`` holds it equal to what the scripts left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition

from events.base import DomainEvent
from events.envelope import EventEnvelope
from events.order import (
    ORDER_FAMILY,
    ORDER_REQUESTS_FAMILY,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    OrderPaid,
    OrderRefunded,
    OrderRejected,
    OrderRequested,
    RefundRequired,
    SeatsReserved,
    order_requests_key,
)
from events.program import PROGRAM_FAMILY, SeatsLaidOut, TicketCategoryAdded, TicketCategoryRepriced, program_key
from events.serialization import UndecodableEvent, decode, payload_of
from infra.kafka import EVENT_TYPE_HEADER, LOG_READ_BATCH
from infra.settings import Settings
from projections.seat_allocation import DecisionStatus, epoch_ms

ORDER_TYPES = {
    t.event_type
    for t in (SeatsReserved, OrderRejected, OrderCancelled, OrderExpired, OrderPaid, RefundRequired, OrderRefunded)
}
LIVE = (DecisionStatus.HELD, DecisionStatus.SOLD)
Read = tuple[EventEnvelope, DomainEvent]
log = structlog.get_logger(__name__)


@dataclass
class TicketCategory:
    """One ticket category's inventory: its show time, total, price and seats (id → row, column)."""

    show_time_id: int | None = None
    total: int | None = None
    price: str | None = None
    price_version: int = 0
    seats: dict[int, tuple[int, int]] = field(default_factory=dict)

    def reprice(self, price: str, version: int) -> None:
        # The newest version wins, whatever the order of arrival (lua/inventory_apply.lua).
        if version > self.price_version:
            self.price, self.price_version = price, version


@dataclass
class Decision:
    """The allocator's decision on one order, as the log has it so far."""

    decision: dict[str, Any]
    """The decision as lua/order_reserve.lua stores it (its status kept current)."""
    changed_at: datetime
    """When Redis last wrote it: its TTL, if it has one, runs from here."""
    paid_by: str | None = None
    """The payment that sold it (OrderPaid schema 2): only that payment's refund gives its seats back."""

    @property
    def status(self) -> DecisionStatus:
        return DecisionStatus(self.decision["status"])


@dataclass
class InventoryState:
    """What the program's keys hold, by the log: catalogue events applied, categories, decisions."""

    applied: list[str] = field(default_factory=list)
    categories: dict[int, TicketCategory] = field(default_factory=dict)
    orders: dict[int, Decision] = field(default_factory=dict)
    hold_sequence: int = 0
    """The highest hold sequence in the log: the counter's value (new holds continue above it)."""

    @property
    def live_orders(self) -> int:
        """Orders held or sold."""
        return sum(1 for o in self.orders.values() if o.status in LIVE)


async def read_state(settings: Settings, program_id: int) -> InventoryState:
    """The program's state as its log describes it now."""
    kafka = settings.kafka
    catalogue = _partition_of(settings, PROGRAM_FAMILY, program_key(program_id))
    requests = _partition_of(settings, ORDER_REQUESTS_FAMILY, order_requests_key(program_id))
    orders = [TopicPartition(kafka.topic(ORDER_FAMILY), p) for p in range(kafka.topics[ORDER_FAMILY].partitions)]
    catalogue_key, requests_key = program_key(program_id).encode(), order_requests_key(program_id).encode()

    def keep(record: ConsumerRecord[bytes, bytes]) -> bool:
        if record.topic == catalogue.topic and record.partition == catalogue.partition:
            return bool(record.key == catalogue_key)
        if record.topic == requests.topic and record.partition == requests.partition:
            return bool(record.key == requests_key)
        return dict(record.headers).get(EVENT_TYPE_HEADER, b"").decode() in ORDER_TYPES

    read = await _read(settings, [catalogue, requests, *orders], keep)
    state = InventoryState()
    for envelope, event in read[catalogue]:
        _apply_catalogue(state, envelope, event)
    documents = _documents(read[requests])
    for partition in orders:
        for envelope, event in read[partition]:
            if isinstance(event, OrderEvent) and getattr(event, "program_id", None) == program_id:
                _apply_order(state, envelope, event, documents)
    return state


def _partition_of(settings: Settings, family: str, key: str) -> TopicPartition:
    """Where the key is published: the producer's default partitioner over the topic's partitions
    (their count is fixed once the topic exists, infra/kafka.py:ensure_topics)."""
    partitions = list(range(settings.kafka.topics[family].partitions))
    return TopicPartition(settings.kafka.topic(family), DefaultPartitioner()(key.encode(), partitions, partitions))


async def _read(
    settings: Settings, partitions: list[TopicPartition], keep: Callable[[ConsumerRecord[bytes, bytes]], bool]
) -> dict[TopicPartition, list[Read]]:
    """The kept events of each partition, from its start to its end as of now, in log order."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=settings.kafka.request_timeout_ms,
        client_id="damai-inventory-rebuild",
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for partition, start in (await consumer.beginning_offsets(partitions)).items():
            consumer.seek(partition, start)
        found: dict[TopicPartition, list[Read]] = {p: [] for p in partitions}
        while unread := [p for p in partitions if await consumer.position(p) < ends[p]]:
            fetched = await consumer.getmany(
                *unread, timeout_ms=settings.kafka.request_timeout_ms, max_records=LOG_READ_BATCH
            )
            for partition, records in fetched.items():
                found[partition] += _decoded(r for r in records if r.offset < ends[partition] and keep(r))
        return found
    finally:
        await consumer.stop()


def _decoded(records: Iterable[ConsumerRecord[bytes, bytes]]) -> list[Read]:
    """The records' events; one no projector could read (dead-lettered there) is skipped here too."""
    found = []
    for record in records:
        try:
            envelope = decode(record.value)
            found.append((envelope, payload_of(envelope)))
        except UndecodableEvent:
            log.warning("rebuild.undecodable", topic=record.topic, partition=record.partition, offset=record.offset)
    return found


def _apply_catalogue(state: InventoryState, envelope: EventEnvelope, event: DomainEvent) -> None:
    """lua/inventory_apply.lua's effect: each event once, by id."""
    event_id = str(envelope.event_id)
    if event_id in state.applied:
        return
    if not isinstance(event, TicketCategoryAdded | SeatsLaidOut | TicketCategoryRepriced):
        return
    category = state.categories.setdefault(event.ticket_category_id, TicketCategory())
    match event:
        case TicketCategoryAdded():
            category.total, category.show_time_id = event.total, event.show_time_id
            category.reprice(f"{event.price:.2f}", envelope.aggregate_version)
        case TicketCategoryRepriced():
            category.reprice(f"{event.price:.2f}", envelope.aggregate_version)
        case SeatsLaidOut():
            category.seats |= {s.seat_id: (s.row, s.column) for s in event.seats}
    state.applied.append(event_id)


def _documents(requests: Sequence[Read]) -> dict[int, list[str]]:
    """The blind indexes each real-name request names, in its buyers' order (a hold claims them)."""
    found: dict[int, list[str]] = {}
    for _, request in requests:
        if isinstance(request, OrderRequested) and request.rules.real_name_required:
            found.setdefault(request.order_number, [b.id_number_blind for b in request.ticket_buyers])
    return found


def _apply_order(
    state: InventoryState, envelope: EventEnvelope, event: OrderEvent, documents: dict[int, list[str]]
) -> None:
    """lua/order_reserve.lua's and lua/order_release.lua's effect: the first decision of an order
    stands; the first ending of a held order ends it."""
    number, at = event.order_number, envelope.occurred_at
    known = state.orders.get(number)
    if isinstance(event, SeatsReserved):
        state.hold_sequence = max(state.hold_sequence, event.hold_sequence)
    match event:
        case SeatsReserved() if known is None:
            decision = _head(event, DecisionStatus.HELD) | {
                "t": [_ticket(t) for t in event.tickets],
                "total": f"{event.total_amount:.2f}",
                "pay": epoch_ms(event.pay_deadline),
                "hs": event.hold_sequence,
            }
            if number in documents:
                decision["d"] = documents[number]
            state.orders[number] = Decision(decision, at)
        case OrderRejected() if known is None:
            state.orders[number] = Decision(_head(event, DecisionStatus.REJECTED) | {"r": event.reason.value}, at)
        case OrderCancelled() | OrderExpired() | OrderPaid() if known and known.status is DecisionStatus.HELD:
            ending = {OrderCancelled: DecisionStatus.CANCELLED, OrderExpired: DecisionStatus.EXPIRED}
            known.decision["status"] = ending.get(type(event), DecisionStatus.SOLD).value
            known.changed_at = at
            if isinstance(event, OrderPaid):
                known.paid_by = event.payment_id
        case RefundRequired() if known and known.status is DecisionStatus.SOLD and known.paid_by == event.payment_id:
            known.decision["status"] = DecisionStatus.REFUNDED.value  # its seats back on sale
            known.changed_at = at
        case OrderRefunded() if known and known.status in (DecisionStatus.CANCELLED, DecisionStatus.EXPIRED):
            known.decision["status"] = DecisionStatus.REFUNDED.value  # a late payment given back


def _head(event: SeatsReserved | OrderRejected, status: DecisionStatus) -> dict[str, Any]:
    return {
        "o": str(event.order_number),
        "u": str(event.user_id),
        "st": str(event.show_time_id),
        "status": status.value,
    }


def _ticket(t: Any) -> list[Any]:
    """[seat, category, row, column, price, buyer] as the decision stores a ticket ("" for none)."""
    seat = "" if t.seat_id is None else str(t.seat_id)
    buyer = "" if t.ticket_buyer_id is None else str(t.ticket_buyer_id)
    return [seat, str(t.ticket_category_id), t.row or 0, t.column or 0, f"{t.price:.2f}", buyer]
