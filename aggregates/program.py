"""The Program aggregate: a program, its show times and ticket categories, and their rules.

Every change is decided by a public method that checks the rules (raising a domain error with a
stable code) and then calls an ``@event`` method named after the project's event type; the
library records that event and applies it. Loading from the log goes through the same ``@event``
methods, so what decided a command is exactly what the log holds.

Seats are laid out here but not kept: the aggregate counts them per ticket category; each seat's
state belongs to the seat inventory the allocator owns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from eventsourcing.domain import event
from pydantic import BaseModel, ConfigDict

from aggregates.base import Aggregate
from aggregates.errors import Conflict, InvalidCommand, NotFound
from events.program import PROGRAM_FAMILY, RefundPolicy, SeatSpec, program_key


class ProgramStatus(StrEnum):
    """Where a program stands with buyers; the read models store the same values."""

    DRAFT = "draft"
    """Being prepared: hidden from buyers."""
    ON_SALE = "on_sale"
    OFF_SALE = "off_sale"
    """Visible to its buyers, no longer sold."""


class ShowTime(BaseModel):
    model_config = ConfigDict(frozen=True)

    starts_at: datetime


class TicketCategory(BaseModel):
    model_config = ConfigDict(frozen=True)

    show_time_id: int
    name: str
    price: Decimal
    total: int
    seats: int = 0
    """Seats laid out so far (0 where seats are not chosen)."""


class CatalogueReferences(Protocol):
    """What creating a program needs to know of reference data (answered by the read side)."""

    def area_exists(self, area_id: int) -> bool: ...

    def category_exists(self, category_id: int) -> bool: ...

    def parent_of(self, category_id: int) -> int | None:
        """The parent of a child category; None for a top-level (or unknown) one."""
        ...


class Program(Aggregate):
    topic_family = PROGRAM_FAMILY

    program_id: int
    title: str
    actor: str | None
    venue: str
    area_id: int
    parent_category_id: int
    category_id: int
    detail: str
    notices: list[str]
    per_order_limit: int
    per_account_limit: int
    seat_selectable: bool
    real_name_required: bool
    refund_policy: RefundPolicy
    high_heat: bool
    issue_time: datetime | None
    payment_minutes: int
    status: ProgramStatus
    show_times: dict[int, ShowTime]
    ticket_categories: dict[int, TicketCategory]

    @staticmethod
    def create_id(program_id: int) -> str:
        return program_key(program_id)

    def identity(self) -> dict[str, Any]:
        return {"program_id": self.program_id}

    # -- creating ------------------------------------------------------------------------------

    @classmethod
    def create(cls, refs: CatalogueReferences, **fields: Any) -> Program:
        """A new draft program; ``fields`` are ``ProgramCreated``'s payload."""
        _check_references(refs, fields["area_id"], fields["parent_category_id"], fields["category_id"])
        if fields["per_order_limit"] > fields["per_account_limit"]:
            raise InvalidCommand("the per-order limit cannot exceed the per-account limit", code="LIMITS_INCONSISTENT")
        return cls(**fields)

    @event("ProgramCreated")
    def __init__(
        self,
        program_id: int,
        title: str,
        actor: str | None,
        venue: str,
        area_id: int,
        parent_category_id: int,
        category_id: int,
        detail: str,
        notices: list[str],
        per_order_limit: int,
        per_account_limit: int,
        seat_selectable: bool,
        real_name_required: bool,
        refund_policy: RefundPolicy,
        high_heat: bool,
        issue_time: datetime | None,
        payment_minutes: int,
    ) -> None:
        self.program_id = program_id
        self.title = title
        self.actor = actor
        self.venue = venue
        self.area_id = area_id
        self.parent_category_id = parent_category_id
        self.category_id = category_id
        self.detail = detail
        self.notices = list(notices)
        self.per_order_limit = per_order_limit
        self.per_account_limit = per_account_limit
        self.seat_selectable = seat_selectable
        self.real_name_required = real_name_required
        self.refund_policy = refund_policy
        self.high_heat = high_heat
        self.issue_time = issue_time
        self.payment_minutes = payment_minutes
        self.status = ProgramStatus.DRAFT
        self.show_times = {}
        self.ticket_categories = {}

    def add_show_time(self, show_time_id: int, starts_at: datetime, now: datetime) -> None:
        if starts_at <= now:
            raise _in_past(starts_at)
        self._show_time_added(show_time_id, starts_at)

    @event("ShowTimeAdded")
    def _show_time_added(self, show_time_id: int, starts_at: datetime) -> None:
        self.show_times[show_time_id] = ShowTime(starts_at=starts_at)

    def add_ticket_category(
        self,
        show_time_id: int,
        ticket_category_id: int,
        name: str,
        price: Decimal,
        *,
        total: int | None,
        seats: Sequence[SeatSpec] | None,
        seats_per_event: int,
    ) -> None:
        """A ticket category of a show time: counted by ``total``, or laid out as ``seats``
        (in events of at most ``seats_per_event`` seats)."""
        if (seats is not None) != self.seat_selectable:
            raise InvalidCommand(
                "ticket categories need a seat layout exactly when seats can be chosen",
                code="SEAT_LAYOUT_MISMATCH",
                details={"ticketCategory": name},
            )
        self._check_seats(price, seats or ())
        count = len(seats) if seats is not None else total or 0
        self._ticket_category_added(show_time_id, ticket_category_id, name, price, count)
        for i in range(0, len(seats or ()), seats_per_event):
            self._seats_laid_out(show_time_id, ticket_category_id, list((seats or ())[i : i + seats_per_event]))

    def _check_seats(self, price: Decimal, seats: Iterable[SeatSpec]) -> None:
        for seat in seats:
            if seat.price != price:
                # A seat is sold at its category's price; the allocator checks the same equality.
                raise InvalidCommand(
                    "a seat's price must equal its ticket category's price",
                    code="SEAT_PRICE_MISMATCH",
                    details={"row": seat.row, "column": seat.column, "price": str(seat.price)},
                )

    @event("TicketCategoryAdded")
    def _ticket_category_added(
        self, show_time_id: int, ticket_category_id: int, name: str, price: Decimal, total: int
    ) -> None:
        self.ticket_categories[ticket_category_id] = TicketCategory(
            show_time_id=show_time_id, name=name, price=price, total=total
        )

    @event("SeatsLaidOut")
    def _seats_laid_out(self, show_time_id: int, ticket_category_id: int, seats: list[SeatSpec]) -> None:
        category = self.ticket_categories[ticket_category_id]
        self.ticket_categories[ticket_category_id] = category.model_copy(update={"seats": category.seats + len(seats)})

    # -- going on and off sale -----------------------------------------------------------------

    def publish(self) -> None:
        """A draft or off-sale program goes on sale."""
        if self.status is ProgramStatus.ON_SALE:
            raise Conflict("the program is already on sale", code="PROGRAM_ALREADY_ON_SALE")
        self._published()

    @event("ProgramPublished")
    def _published(self) -> None:
        self.status = ProgramStatus.ON_SALE

    def take_off_sale(self, reason: str) -> None:
        """Only a program on sale can be taken off sale."""
        if self.status is not ProgramStatus.ON_SALE:
            raise Conflict("the program is not on sale", code="PROGRAM_NOT_ON_SALE")
        self._taken_off_sale(reason)

    @event("ProgramTakenOffSale")
    def _taken_off_sale(self, reason: str) -> None:
        self.status = ProgramStatus.OFF_SALE

    # -- changing show times and prices --------------------------------------------------------

    def reschedule_show_time(self, show_time_id: int, starts_at: datetime, now: datetime) -> None:
        """Move a show time that has not started to a time in the future; nothing when it is already there."""
        show = self.show_times.get(show_time_id)
        if show is None:
            raise NotFound(
                f"program {self.program_id} has no show time {show_time_id}",
                code="SHOW_TIME_NOT_FOUND",
                details={"programId": self.program_id, "showTimeId": show_time_id},
            )
        if show.starts_at <= now:
            raise Conflict("the show time has already started", code="SHOW_TIME_STARTED")
        if starts_at <= now:
            raise _in_past(starts_at)
        if starts_at != show.starts_at:
            self._show_time_rescheduled(show_time_id, starts_at, show.starts_at)

    @event("ShowTimeRescheduled")
    def _show_time_rescheduled(self, show_time_id: int, starts_at: datetime, previous_starts_at: datetime) -> None:
        self.show_times[show_time_id] = ShowTime(starts_at=starts_at)

    def reprice_ticket_category(self, ticket_category_id: int, price: Decimal) -> None:
        """Give a ticket category (and its seats) a new price; nothing when it has that price."""
        category = self.ticket_categories.get(ticket_category_id)
        if category is None:
            raise NotFound(
                f"program {self.program_id} has no ticket category {ticket_category_id}",
                code="TICKET_CATEGORY_NOT_FOUND",
                details={"programId": self.program_id, "ticketCategoryId": ticket_category_id},
            )
        if price != category.price:
            self._ticket_category_repriced(category.show_time_id, ticket_category_id, price, category.price)

    @event("TicketCategoryRepriced")
    def _ticket_category_repriced(
        self, show_time_id: int, ticket_category_id: int, price: Decimal, previous_price: Decimal
    ) -> None:
        category = self.ticket_categories[ticket_category_id]
        self.ticket_categories[ticket_category_id] = category.model_copy(update={"price": price})


def program_not_found(program_id: int) -> NotFound:
    return NotFound(f"no program {program_id}", code="PROGRAM_NOT_FOUND", details={"programId": program_id})


def _in_past(starts_at: datetime) -> InvalidCommand:
    return InvalidCommand(
        "a show time must be in the future", code="SHOW_TIME_IN_PAST", details={"startsAt": starts_at.isoformat()}
    )


def _check_references(refs: CatalogueReferences, area_id: int, parent_category_id: int, category_id: int) -> None:
    if not refs.area_exists(area_id):
        raise InvalidCommand(f"area {area_id} does not exist", code="AREA_UNKNOWN", details={"areaId": area_id})
    if not refs.category_exists(parent_category_id) or refs.parent_of(parent_category_id) is not None:
        raise InvalidCommand(
            f"{parent_category_id} is not a top-level category",
            code="PARENT_CATEGORY_UNKNOWN",
            details={"parentCategoryId": parent_category_id},
        )
    if not refs.category_exists(category_id) or refs.parent_of(category_id) != parent_category_id:
        raise InvalidCommand(
            f"category {category_id} is not a child of {parent_category_id}",
            code="CATEGORY_MISMATCH",
            details={"categoryId": category_id, "parentCategoryId": parent_category_id},
        )
