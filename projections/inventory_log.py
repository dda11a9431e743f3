"""A program's purchase state as its log describes it: the Python twin of the scripts that write it.

The catalogue events of ``program-<id>`` (the inventory, as ``lua/inventory_apply.lua`` applies
them), the program's order requests (the ID documents' blind indexes a held order claims, which no
other event carries), and the order decisions and endings (as ``lua/order_reserve.lua`` and
``lua/order_release.lua`` leave them). The scripts derive every key from the program's hash tag, so
they cannot replay into scratch keys; ``projections/rebuild_inventory.py`` writes this state instead,
and ``tests/e2e/test_rebuild_inventory.py`` holds it equal to what the scripts left.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
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
FETCH_MAX_WAIT_MS = 10
"""How long the broker holds a fetch that finds nothing new. The consumer fetches ahead in the
background, and a request for the log's end queues behind that fetch on its connection: at
aiokafka's 500 ms each read of the log's end took half a second, once per program and attempt."""
_Kept = tuple[int, EventEnvelope, DomainEvent]
"""An event of the log and the program it is about."""
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


class ProgramLogs:
    """Some programs' logs, read once and kept up: each ``state`` reads on from where the previous
    read ended, to the log's end as of now. The order topic is keyed by order number, so a program's
    orders are anywhere in it: over every program, one reader reads it once, not once per program.

    Reads the partitions of the programs' catalogue (``program-<id>``) and order requests
    (``order-requests-<id>``) keys, and every partition of the order topic."""

    def __init__(self, settings: Settings, program_ids: Iterable[int]) -> None:
        self._settings = settings
        programs = set(program_ids)
        self._catalogue = {program_key(p).encode(): p for p in programs}
        self._requests = {order_requests_key(p).encode(): p for p in programs}
        kafka = settings.kafka
        self._orders_topic = kafka.topic(ORDER_FAMILY)
        keyed = {_partition_of(settings, PROGRAM_FAMILY, program_key(p)) for p in programs} | {
            _partition_of(settings, ORDER_REQUESTS_FAMILY, order_requests_key(p)) for p in programs
        }
        self._keyed = sorted(keyed)
        self._orders = [TopicPartition(self._orders_topic, i) for i in range(kafka.topics[ORDER_FAMILY].partitions)]
        self._states = {p: InventoryState() for p in programs}
        self._documents: dict[int, dict[int, list[str]]] = {p: {} for p in programs}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=kafka.request_timeout_ms,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            client_id="damai-inventory-rebuild",
        )

    async def __aenter__(self) -> ProgramLogs:
        await self._consumer.start()
        partitions = [*self._keyed, *self._orders]
        self._consumer.assign(partitions)
        for partition, start in (await self._consumer.beginning_offsets(partitions)).items():
            self._consumer.seek(partition, start)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def state(self, program_id: int) -> InventoryState:
        """The program's state as its log describes it now (the object is kept up by later reads)."""
        await self._read_to_end()
        return self._states[program_id]

    async def _read_to_end(self) -> None:
        consumer, timeout_ms = self._consumer, self._settings.kafka.request_timeout_ms
        ends = await consumer.end_offsets([*self._keyed, *self._orders])
        # The catalogue and the requests first, then the orders, each to its end as of one moment: a
        # decision appended before that moment was appended after its request, so its request is
        # applied before it.
        for partitions in (self._keyed, self._orders):
            while unread := [p for p in partitions if await consumer.position(p) < ends[p]]:
                fetched = await consumer.getmany(*unread, timeout_ms=timeout_ms, max_records=LOG_READ_BATCH)
                for partition, records in fetched.items():
                    beyond = [r.offset for r in records if r.offset >= ends[partition]]
                    if beyond:
                        # Appended after this read's moment: the next read starts at them, not after.
                        consumer.seek(partition, beyond[0])
                    kept = (
                        (program, r) for r in records if r.offset < ends[partition] and (program := self._program_of(r))
                    )
                    for program, envelope, event in _decoded(kept):
                        self._apply(program, envelope, event)

    def _program_of(self, record: ConsumerRecord[bytes, bytes]) -> int | None:
        """The program of ours a record is about, if any (decoding only what it must)."""
        if record.topic != self._orders_topic:
            return self._catalogue.get(record.key or b"") or self._requests.get(record.key or b"")
        if dict(record.headers).get(EVENT_TYPE_HEADER, b"").decode() not in ORDER_TYPES:
            return None
        program = _named_program(record.value)
        return program if program in self._states else None

    def _apply(self, program: int, envelope: EventEnvelope, event: DomainEvent) -> None:
        state = self._states[program]
        match event:
            case OrderRequested():
                if event.rules.real_name_required:
                    # The blind indexes the request names, in its buyers' order (a hold claims them).
                    blinds = [b.id_number_blind for b in event.ticket_buyers]
                    self._documents[program].setdefault(event.order_number, blinds)
            case OrderEvent():
                _apply_order(state, envelope, event, self._documents[program])
            case _:
                _apply_catalogue(state, envelope, event)


def _named_program(value: bytes | None) -> int | None:
    """The programId of an order event's payload (every schema version of every order event has
    it), read without validating the whole event; None for a record that is not such JSON."""
    try:
        return int(orjson.loads(value or b"")["payload"]["programId"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _partition_of(settings: Settings, family: str, key: str) -> TopicPartition:
    """Where the key is published: the producer's default partitioner over the topic's partitions
    (their count is fixed once the topic exists, infra/kafka.py:ensure_topics)."""
    partitions = list(range(settings.kafka.topics[family].partitions))
    return TopicPartition(settings.kafka.topic(family), DefaultPartitioner()(key.encode(), partitions, partitions))


def _decoded(records: Iterable[tuple[int, ConsumerRecord[bytes, bytes]]]) -> list[_Kept]:
    """The records' events; one no projector could read (dead-lettered there) is skipped here too."""
    found = []
    for program, record in records:
        try:
            envelope = decode(record.value)
            found.append((program, envelope, payload_of(envelope)))
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
