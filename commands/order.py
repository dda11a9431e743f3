"""Placing an order: check the request against the program and the buyer, then append
``OrderRequested`` for the allocator to decide (docs/orders.md).

Nothing here reserves a seat: the allocator decides every request of a program, one at a time, in
one Redis script (``lua/order_reserve.lua``). What the handler does is turn away, cheaply and before
the log, every request that cannot succeed — a program not on sale, a past show, too many tickets,
someone else's ticket buyers, a category this process already knows is sold out — and give each
accepted request its order number, once (``Idempotency-Key``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import orjson
from pydantic import Field, model_validator

from aggregates.errors import Conflict, InvalidCommand, NotFound
from commands.ports import Clock
from commands.program import Command, PriceIn
from events.envelope import EventEnvelope
from events.order import (
    TICKETS_PER_ORDER_MAX,
    CancelRequested,
    ChosenSeat,
    OrderRequested,
    OrderRules,
    TicketBuyerDocument,
)
from events.program import EntityId

IDEMPOTENCY_KEY_MAX_LENGTH = 128
HELD = "held"
"""The allocator's status of an order whose seats are held and not paid."""


class SeatChoice(Command):
    id: EntityId
    """The seat's id, as the seat map gives it."""
    price: PriceIn
    """The price the buyer was shown; a different price now refuses the order (``PRICE_CHANGED``)."""


class PlaceOrder(Command):
    """Automatic seats (``ticketCategoryId`` and ``count``) or chosen ones (``seats``)."""

    program_id: EntityId
    show_time_id: EntityId
    ticket_category_id: EntityId | None = None
    count: int | None = Field(default=None, ge=1, le=TICKETS_PER_ORDER_MAX)
    seats: list[SeatChoice] | None = Field(default=None, min_length=1, max_length=TICKETS_PER_ORDER_MAX)
    ticket_buyer_ids: list[EntityId] = Field(default_factory=list, max_length=TICKETS_PER_ORDER_MAX)

    @model_validator(mode="after")
    def _automatic_or_chosen(self) -> PlaceOrder:
        automatic = self.ticket_category_id is not None and self.count is not None
        if automatic == (self.seats is not None) or (self.seats is not None and self.ticket_category_id is not None):
            raise ValueError("give ticketCategoryId and count (automatic seats), or seats (chosen seats)")
        return self

    @property
    def tickets(self) -> int:
        return self.count if self.count is not None else len(self.seats or ())

    def fingerprint(self) -> str:
        """What makes two requests the same request (for ``Idempotency-Key``)."""
        return hashlib.sha256(orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()


class SoldOut(Conflict):
    """The category has fewer tickets left than asked for, as this process last saw it."""

    code = "SOLD_OUT"


# -- ports ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderableShowTime:
    show_time_id: int
    starts_at: datetime
    ticket_category_ids: frozenset[int]


@dataclass(frozen=True)
class OrderableProgram:
    """What the checks need to know of a program (the read side's detail)."""

    program_id: int
    on_sale: bool
    seat_selectable: bool
    real_name_required: bool
    per_order_limit: int
    per_account_limit: int
    payment_minutes: int
    show_times: Mapping[int, OrderableShowTime]


class Programs(Protocol):
    async def orderable(self, program_id: int) -> OrderableProgram | None: ...


class TicketBuyers(Protocol):
    async def documents(self, user_id: int, ticket_buyer_ids: Sequence[int]) -> Mapping[int, str]:
        """The blind index of each of these buyers' documents that belongs to the user."""
        ...


class Availability(Protocol):
    async def get(self, program_id: int) -> Mapping[int, int] | None:
        """Tickets left per ticket category, as this process last read them (at most a second
        old); None when it cannot say."""
        ...


@dataclass(frozen=True)
class Remembered:
    order_number: int
    fingerprint: str
    program_id: int


@dataclass(frozen=True)
class PlacedOrder:
    program_id: int
    show_time_id: int
    requested_at: datetime


class Admission(Protocol):
    async def admit(
        self, user_id: int, placed: PlacedOrder, remembered: Remembered, idempotency_key: str | None
    ) -> Remembered | None:
        """In one step: count the request in the user's order rate limit (``RateLimited`` when over,
        nothing else done), claim ``idempotency_key`` for ``remembered`` and make the order findable
        by its buyer. When the key names an earlier order, return that one and write nothing."""
        ...

    async def withdraw(self, user_id: int, order_number: int, idempotency_key: str | None) -> None:
        """Undo ``admit`` for a request that did not reach the log."""
        ...


class OrderIndex(Protocol):
    async def placed(self, user_id: int, order_number: int) -> PlacedOrder | None:
        """One of the user's orders; None for someone else's or an unknown one."""
        ...


class Decisions(Protocol):
    async def status_of(self, program_id: int, order_number: int) -> str | None:
        """The allocator's word on the order (held, rejected, cancelled, expired, sold); None before it."""
        ...


class OrderNumbers(Protocol):
    def next_for(self, user_id: int) -> int:
        """A new gene order number: its low bits route it to the user's order shard."""
        ...


class EventLog(Protocol):
    async def append(self, envelopes: list[EventEnvelope], timeout_s: float) -> None: ...


@dataclass(frozen=True)
class Orders:
    """What the order handlers work with (built by ``bootstrap.py``)."""

    programs: Programs
    ticket_buyers: TicketBuyers
    availability: Availability
    admission: Admission
    index: OrderIndex
    decisions: Decisions
    numbers: OrderNumbers
    log: EventLog
    clock: Clock
    decision_deadline: timedelta
    append_timeout_s: float


@dataclass(frozen=True)
class Placed:
    order_number: int
    program_id: int
    repeated: bool
    """True when an ``Idempotency-Key`` named an order placed before: nothing new was appended."""


# -- the handler ------------------------------------------------------------------------------


async def place_order(
    user_id: int,
    cmd: PlaceOrder,
    orders: Orders,
    correlation_id: uuid.UUID | None,
    idempotency_key: str | None = None,
) -> Placed:
    """Check the request, then append ``OrderRequested``; returns the order number to follow.

    Refusals, each with its own code and before anything is appended: ``PROGRAM_NOT_FOUND``,
    ``SHOW_TIME_NOT_FOUND``, ``TICKET_CATEGORY_NOT_FOUND`` (404); ``PROGRAM_NOT_ON_SALE``,
    ``SHOW_TIME_PAST``, ``SOLD_OUT`` (409); ``SEAT_CHOICE_NOT_ALLOWED``, ``PER_ORDER_LIMIT``,
    ``TICKET_BUYERS_REPEATED``, ``TICKET_BUYERS_REQUIRED``, ``TICKET_BUYERS_TOO_MANY``,
    ``TICKET_BUYER_NOT_FOUND``, ``IDEMPOTENCY_KEY_REUSED`` (422); ``RATE_LIMITED`` (429, from the
    admission, which counts the request, claims its key and indexes the order in one step).
    """
    # The cheap way out of a sold-out show, before any I/O. A request with a key may be the retry of
    # one accepted before the category sold out: it is checked once the key is claimed.
    program, show_time = await check_order(cmd, orders, sold_out=idempotency_key is None)
    buyers = await _ticket_buyers(user_id, cmd, program, orders)

    number = orders.numbers.next_for(user_id)
    now = orders.clock()
    fingerprint = cmd.fingerprint() if idempotency_key is not None else ""
    earlier = await orders.admission.admit(
        user_id,
        PlacedOrder(program.program_id, show_time.show_time_id, now),
        Remembered(number, fingerprint, program.program_id),
        idempotency_key,
    )
    if earlier is not None:
        if earlier.fingerprint != fingerprint:
            raise InvalidCommand("this Idempotency-Key was used for another request", code="IDEMPOTENCY_KEY_REUSED")
        return Placed(earlier.order_number, earlier.program_id, repeated=True)
    try:
        if idempotency_key is not None:
            await _check_not_sold_out(cmd, orders)
        requested = OrderRequested(
            order_number=number,
            user_id=user_id,
            program_id=program.program_id,
            show_time_id=show_time.show_time_id,
            ticket_category_id=cmd.ticket_category_id,
            count=cmd.count,
            seats=tuple(ChosenSeat(seat_id=s.id, price=s.price) for s in cmd.seats or ()),
            ticket_buyers=buyers,
            rules=OrderRules(
                per_account_limit=program.per_account_limit,
                real_name_required=program.real_name_required,
                payment_minutes=program.payment_minutes,
                seat_selectable=program.seat_selectable,
            ),
            deadline=now + orders.decision_deadline,
        )
        envelope = EventEnvelope.wrap(requested, aggregate_version=1, correlation_id=correlation_id, occurred_at=now)
        await orders.log.append([envelope], orders.append_timeout_s)
    except BaseException:
        await orders.admission.withdraw(user_id, number, idempotency_key)
        raise
    return Placed(number, program.program_id, repeated=False)


async def check_order(
    cmd: PlaceOrder, orders: Orders, *, sold_out: bool = True
) -> tuple[OrderableProgram, OrderableShowTime]:
    """The checks that need no I/O of their own (the program as the detail cache has it, the
    sold-out flag): the program is on sale, the show time and category exist, the count is allowed,
    and (with ``sold_out``) the category is not sold out. Also the edge's early answer to a crowd
    asking for a sold-out category (``api/orders.py:sold_out_answer``)."""
    program = await orders.programs.orderable(cmd.program_id)
    if program is None:
        raise NotFound(f"no program {cmd.program_id}", code="PROGRAM_NOT_FOUND", details={"programId": cmd.program_id})
    show_time = _check_program(cmd, program, orders.clock())
    _check_tickets(cmd, program)
    if sold_out:
        await _check_not_sold_out(cmd, orders)
    return program, show_time


def _check_program(cmd: PlaceOrder, program: OrderableProgram, now: datetime) -> OrderableShowTime:
    if not program.on_sale:
        raise Conflict("the program is not on sale", code="PROGRAM_NOT_ON_SALE", details={"programId": cmd.program_id})
    show_time = program.show_times.get(cmd.show_time_id)
    if show_time is None:
        raise NotFound(
            f"no show time {cmd.show_time_id} in this program",
            code="SHOW_TIME_NOT_FOUND",
            details={"showTimeId": cmd.show_time_id},
        )
    if show_time.starts_at <= now:
        raise Conflict("the show has begun", code="SHOW_TIME_PAST", details={"showTimeId": cmd.show_time_id})
    if cmd.ticket_category_id is not None and cmd.ticket_category_id not in show_time.ticket_category_ids:
        raise NotFound(
            f"no ticket category {cmd.ticket_category_id} at this show time",
            code="TICKET_CATEGORY_NOT_FOUND",
            details={"ticketCategoryId": cmd.ticket_category_id},
        )
    if cmd.seats is not None and not program.seat_selectable:
        raise InvalidCommand("this program's seats are not chosen by the buyer", code="SEAT_CHOICE_NOT_ALLOWED")
    return show_time


def _check_tickets(cmd: PlaceOrder, program: OrderableProgram) -> None:
    if cmd.tickets > program.per_order_limit:
        raise InvalidCommand(
            f"at most {program.per_order_limit} tickets per order",
            code="PER_ORDER_LIMIT",
            details={"limit": program.per_order_limit},
        )
    if cmd.seats is not None and len({s.id for s in cmd.seats}) != len(cmd.seats):
        raise InvalidCommand("a seat is named twice", code="SEAT_REPEATED")


async def _ticket_buyers(
    user_id: int, cmd: PlaceOrder, program: OrderableProgram, orders: Orders
) -> tuple[TicketBuyerDocument, ...]:
    ids = cmd.ticket_buyer_ids
    if len(set(ids)) != len(ids):
        raise InvalidCommand("a ticket buyer is named twice", code="TICKET_BUYERS_REPEATED")
    if program.real_name_required and len(ids) != cmd.tickets:
        raise InvalidCommand(
            "this program sells real-name tickets: name one ticket buyer per ticket",
            code="TICKET_BUYERS_REQUIRED",
            details={"tickets": cmd.tickets},
        )
    if len(ids) > cmd.tickets:
        raise InvalidCommand("more ticket buyers than tickets", code="TICKET_BUYERS_TOO_MANY")
    if not ids:
        return ()
    documents = await orders.ticket_buyers.documents(user_id, ids)
    missing = [i for i in ids if i not in documents]
    if missing:
        raise InvalidCommand(
            "not one of your ticket buyers",
            code="TICKET_BUYER_NOT_FOUND",
            details={"ticketBuyerIds": [str(i) for i in missing]},
        )
    return tuple(TicketBuyerDocument(ticket_buyer_id=i, id_number_blind=documents[i]) for i in ids)


async def _check_not_sold_out(cmd: PlaceOrder, orders: Orders) -> None:
    """Automatic seats of a category this process saw sold out (at most a second ago) are refused
    here, without the log; the allocator decides everything else."""
    if cmd.ticket_category_id is None or cmd.count is None:
        return
    remaining = await orders.availability.get(cmd.program_id)
    if remaining is not None and remaining.get(cmd.ticket_category_id, cmd.count) < cmd.count:
        raise SoldOut(
            "no tickets of this category are left", details={"ticketCategoryId": str(cmd.ticket_category_id)}
        )


async def cancel_order(user_id: int, order_number: int, orders: Orders, correlation_id: uuid.UUID | None) -> int:
    """Ask the lifecycle to cancel one of the user's held orders; returns its program id.

    ``ORDER_NOT_FOUND`` (404) for an order that is not the user's; ``ORDER_NOT_CANCELLABLE`` (409)
    unless it is held (unpaid). The lifecycle decides: a cancel that meets an expiry or a payment in
    flight loses to whichever came first."""
    placed = await orders.index.placed(user_id, order_number)
    if placed is None:
        raise NotFound(f"no order {order_number}", code="ORDER_NOT_FOUND", details={"orderNumber": str(order_number)})
    status = await orders.decisions.status_of(placed.program_id, order_number)
    if status != HELD:
        raise Conflict(
            "only an unpaid order can be cancelled",
            code="ORDER_NOT_CANCELLABLE",
            details={"orderNumber": str(order_number), "status": status or "pending"},
        )
    intent = CancelRequested(order_number=order_number, user_id=user_id, program_id=placed.program_id)
    envelope = EventEnvelope.wrap(intent, aggregate_version=1, correlation_id=correlation_id)
    await orders.log.append([envelope], orders.append_timeout_s)
    return placed.program_id
