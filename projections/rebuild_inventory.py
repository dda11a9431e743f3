"""Rebuild one program's Redis purchase state from the log, while the system runs.

What the program's keys hold is a function of the log: the catalogue events of ``program-<id>``
(the inventory, as ``lua/inventory_apply.lua`` applies them), the program's order requests (the
ID documents' blind indexes a held order claims, which no other event carries), and the order
decisions and endings (as ``lua/order_reserve.lua`` and ``lua/order_release.lua`` leave them).
The scripts derive every key from the program's hash tag, so they cannot replay into scratch keys;
the state is computed here instead, and ``tests/e2e/test_rebuild_inventory.py`` holds it equal to
what the scripts left. It replaces the program's keys in one MULTI/EXEC: a reader or a decision
sees the old state or the new, never a mix. The command side's snapshot of the program
(``{p:<id>}:aggregate:<log>``) is not the inventory's and is left alone.

Decisions made while the rebuild reads the log are not lost. Redis is written before the log
(ADR 0008), so the rebuild:

1. WATCHes the remaining counts and the applied catalogue events (every hold, release and
   catalogue change writes one of them), then every decision key there is;
2. reads the log and computes the state;
3. compares the status of each decision in Redis with the log's: a decision the log does not show
   yet (appended a moment after Redis) means the log is behind, so it reads again;
4. writes; a watched key changed meanwhile aborts the write, and it starts again.

After ``attempts`` tries it refuses (``RebuildRefused``): a program selling fast enough to change
its state during every read must be paused first (taken off sale). A rejection decided after the
rebuild listed the keys is neither watched nor overwritten; it survives as it is. The one case it
cannot see: the keys were already lost (deleted, a Redis without its data) while a decision made
before the loss had not reached the log; that decision is missing from the rebuilt state until its
event lands and the rebuild runs again (``damai verify orders`` reports it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

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
from infra.redis_keys import (
    SEAT_ROW_STRIDE,
    account_tickets,
    aggregate_snapshot,
    available_seats,
    category_columns,
    category_show_times,
    hold_sequence,
    inventory_applied,
    order_decision,
    program_keys_pattern,
    program_tag,
    remaining_counts,
    seat_categories,
    seat_facts,
    show_documents,
    ticket_category_price_versions,
    ticket_category_prices,
)
from infra.settings import Settings
from projections.seat_allocation import DecisionStatus, epoch_ms
from projections.verify import SCAN_COUNT

REBUILD_ATTEMPTS = 5
"""Reads of the log before the rebuild gives up on a program whose state keeps changing."""
RETRY_PAUSE_S = 0.5
"""Time for the log to catch up with Redis between two attempts."""
ORDER_TYPES = {
    t.event_type
    for t in (SeatsReserved, OrderRejected, OrderCancelled, OrderExpired, OrderPaid, RefundRequired, OrderRefunded)
}
LIVE = (DecisionStatus.HELD, DecisionStatus.SOLD)
Read = tuple[EventEnvelope, DomainEvent]
log = structlog.get_logger(__name__)


class RebuildRefused(Exception):
    """The program's state changed during every attempt; pause its sale and run again."""


@dataclass(frozen=True)
class Rebuilt:
    program_id: int
    catalogue_events: int
    decisions: int
    live_orders: int
    attempts: int


@dataclass
class _Category:
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
class _Order:
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
class _State:
    applied: list[str] = field(default_factory=list)
    categories: dict[int, _Category] = field(default_factory=dict)
    orders: dict[int, _Order] = field(default_factory=dict)
    hold_sequence: int = 0
    """The highest hold sequence in the log: the counter's value (new holds continue above it)."""


async def rebuild_program_inventory(
    settings: Settings, redis: Redis, program_id: int, *, attempts: int = REBUILD_ATTEMPTS
) -> Rebuilt:
    """Replace the program's Redis purchase state with the one its log describes."""
    watched = [remaining_counts(program_id), inventory_applied(program_id)]
    behind: list[int] = []
    for attempt in range(1, attempts + 1):
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch(*watched)
            keys = await _owned_keys(redis, program_id)
            decision_keys = [k for k in keys if k.startswith(order_decision(program_id, 0)[:-1].encode())]
            if decision_keys:
                await pipe.watch(*decision_keys)
            state = await read_state(settings, program_id)
            behind = await _decisions_ahead_of_log(pipe, decision_keys, state)
            if not behind:
                pipe.multi()  # type: ignore[no-untyped-call]
                _write(pipe, program_id, state, keys, settings.orders.view_ttl_s, datetime.now(UTC))
                try:
                    await pipe.execute()
                except WatchError:
                    pass
                else:
                    live = sum(1 for o in state.orders.values() if o.status in LIVE)
                    return Rebuilt(program_id, len(state.applied), len(state.orders), live, attempt)
        await asyncio.sleep(RETRY_PAUSE_S)
    raise RebuildRefused(
        f"program {program_id} changed during each of {attempts} attempts"
        + (f" (Redis ahead of the log for orders {', '.join(map(str, behind[:5]))})" if behind else "")
        + "; take it off sale and run again"
    )


async def _owned_keys(redis: Redis, program_id: int) -> list[bytes]:
    """Every key of the program but the command side's snapshots."""
    snapshot_part = aggregate_snapshot(program_key(program_id), "").removeprefix(program_tag(program_id)).encode()
    return [
        k
        async for k in redis.scan_iter(match=program_keys_pattern(program_id), count=SCAN_COUNT)
        if snapshot_part not in k
    ]


async def _decisions_ahead_of_log(pipe: Pipeline, decision_keys: list[bytes], state: _State) -> list[int]:
    """Orders whose decision in Redis says something the log does not (yet)."""
    if not decision_keys:
        return []
    ahead = []
    for raw in await pipe.mget(decision_keys):
        if raw is None:
            continue
        try:
            decision = json.loads(raw)
            number, status = int(decision["o"]), decision["status"]
        except (ValueError, KeyError, TypeError):
            continue  # unreadable: the rebuild replaces it
        known = state.orders.get(number)
        if known is None or known.decision["status"] != status:
            ahead.append(number)
    return ahead


# -- the log ------------------------------------------------------------------------------------


async def read_state(settings: Settings, program_id: int) -> _State:
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
    state = _State()
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


def _apply_catalogue(state: _State, envelope: EventEnvelope, event: DomainEvent) -> None:
    """lua/inventory_apply.lua's effect: each event once, by id."""
    event_id = str(envelope.event_id)
    if event_id in state.applied:
        return
    if not isinstance(event, TicketCategoryAdded | SeatsLaidOut | TicketCategoryRepriced):
        return
    category = state.categories.setdefault(event.ticket_category_id, _Category())
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


def _apply_order(state: _State, envelope: EventEnvelope, event: OrderEvent, documents: dict[int, list[str]]) -> None:
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
            state.orders[number] = _Order(decision, at)
        case OrderRejected() if known is None:
            state.orders[number] = _Order(_head(event, DecisionStatus.REJECTED) | {"r": event.reason.value}, at)
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


# -- Redis --------------------------------------------------------------------------------------


def _write(pipe: Pipeline, program_id: int, state: _State, old: list[bytes], ttl_s: int, now: datetime) -> None:
    """Queue the replacement of the program's keys (inside MULTI)."""
    p = program_id
    if old:
        pipe.delete(*old)
    if state.applied:
        pipe.sadd(inventory_applied(p), *state.applied)
    live = [o.decision for o in state.orders.values() if o.status in LIVE]
    taken: dict[int, int] = {}
    held_seats: set[str] = set()
    accounts: dict[str, int] = {}
    documents: dict[str, dict[str, str]] = {}
    for d in live:
        for seat, tc, *_ in d["t"]:
            taken[int(tc)] = taken.get(int(tc), 0) + 1
            held_seats.add(seat)
        accounts[d["u"]] = accounts.get(d["u"], 0) + len(d["t"])
        for blind in d.get("d", ()):
            documents.setdefault(d["st"], {})[blind] = d["o"]
    remaining: dict[str, int] = {}
    for tc, c in state.categories.items():
        if c.total is not None or tc in taken:
            remaining[str(tc)] = (c.total or 0) - taken.get(tc, 0)
        if c.show_time_id is not None:
            pipe.hset(category_show_times(p), str(tc), str(c.show_time_id))
        if c.price is not None:
            pipe.hset(ticket_category_prices(p), str(tc), c.price)
            pipe.hset(ticket_category_price_versions(p), str(tc), str(c.price_version))
        if c.seats:
            _write_seats(pipe, p, tc, c.seats, held_seats)
    if remaining:
        pipe.hset(remaining_counts(p), mapping=remaining)  # type: ignore[arg-type]
    if state.hold_sequence:
        pipe.set(hold_sequence(p), state.hold_sequence)
    for user, tickets in accounts.items():
        pipe.set(account_tickets(p, int(user)), tickets)
    for show_time, blinds in documents.items():
        pipe.hset(show_documents(p, int(show_time)), mapping=blinds)  # type: ignore[arg-type]
    for number, order in state.orders.items():
        text = json.dumps(order.decision, separators=(",", ":"))
        if order.status in LIVE:
            pipe.set(order_decision(p, number), text)
        elif (left := ttl_s - int((now - order.changed_at).total_seconds())) > 0:
            pipe.set(order_decision(p, number), text, ex=left)


def _write_seats(pipe: Pipeline, p: int, tc: int, seats: dict[int, tuple[int, int]], held_seats: set[str]) -> None:
    facts = {str(s): f"{row}:{column}" for s, (row, column) in seats.items()}
    pipe.hset(seat_facts(p, tc), mapping=facts)  # type: ignore[arg-type]
    pipe.hset(seat_categories(p), mapping={s: str(tc) for s in facts})
    columns = [column for _, column in seats.values()]
    pipe.hset(category_columns(p), mapping={f"{tc}:min": min(columns), f"{tc}:max": max(columns)})
    available = {
        str(s): row * SEAT_ROW_STRIDE + column for s, (row, column) in seats.items() if str(s) not in held_seats
    }
    if available:
        pipe.zadd(available_seats(p, tc), available)
