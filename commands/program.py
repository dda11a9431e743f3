"""Creating a program: its show times, ticket categories and seat layout, decided in one go."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from commands.errors import Conflict, InvalidCommand, NotFound
from events.program import (
    ProgramCreated,
    ProgramEvent,
    ProgramPublished,
    ProgramTakenOffSale,
    RefundPolicy,
    SeatsLaidOut,
    SeatSpec,
    ShowTimeAdded,
    ShowTimeRescheduled,
    TicketCategoryAdded,
    TicketCategoryRepriced,
)

DEFAULT_PER_ORDER_LIMIT = 6
DEFAULT_PER_ACCOUNT_LIMIT = 6
DEFAULT_PAYMENT_MINUTES = 15
MAX_SHOW_TIMES = 50
MAX_TICKET_CATEGORIES = 20
MAX_GRID_SIDE = 500
# Seats per SeatsLaidOut event: keeps each Kafka message far below the broker's 1 MB default.
SEATS_PER_EVENT = 1000
# Yuan; well inside the read model's numeric(10,2).
MAX_PRICE = Decimal("1000000.00")
Price = Decimal
PriceIn = Annotated[Price, Field(ge=0, le=MAX_PRICE, decimal_places=2)]
"""A price as a command gives it: yuan, two decimal places at most, up to ``MAX_PRICE``."""


class Command(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class SeatGrid(Command):
    """A rectangular block: ``rows`` × ``columns`` seats, rows numbered from ``first_row``."""

    rows: int = Field(ge=1, le=MAX_GRID_SIDE)
    columns: int = Field(ge=1, le=MAX_GRID_SIDE)
    first_row: int = Field(default=1, ge=1)


class SeatPosition(Command):
    row: int = Field(ge=1)
    column: int = Field(ge=1)
    price: PriceIn


class TicketCategorySpec(Command):
    name: str = Field(min_length=1, max_length=32)
    price: PriceIn
    total: int | None = Field(default=None, ge=1)
    seat_grid: SeatGrid | None = None
    seats: list[SeatPosition] | None = None

    @model_validator(mode="after")
    def _one_way_to_count(self) -> TicketCategorySpec:
        given = [x is not None for x in (self.total, self.seat_grid, self.seats)]
        if sum(given) != 1:
            raise ValueError("give exactly one of total, seatGrid or seats")
        return self

    def seat_positions(self) -> Iterator[tuple[int, int, Price]]:
        if self.seat_grid is not None:
            g = self.seat_grid
            for row in range(g.first_row, g.first_row + g.rows):
                for column in range(1, g.columns + 1):
                    yield row, column, self.price
        for seat in self.seats or ():
            yield seat.row, seat.column, seat.price

    @property
    def has_seats(self) -> bool:
        return self.seat_grid is not None or self.seats is not None


class ShowTimeSpec(Command):
    starts_at: AwareDatetime
    ticket_categories: list[TicketCategorySpec] = Field(min_length=1, max_length=MAX_TICKET_CATEGORIES)


class CreateProgram(Command):
    title: str = Field(min_length=1, max_length=128)
    actor: str | None = Field(default=None, max_length=128)
    venue: str = Field(min_length=1, max_length=128)
    area_id: int = Field(gt=0)
    parent_category_id: int = Field(gt=0)
    category_id: int = Field(gt=0)
    detail: str = Field(default="", max_length=20000)
    notices: list[str] = Field(default_factory=list, max_length=20)
    per_order_limit: int = Field(default=DEFAULT_PER_ORDER_LIMIT, ge=1, le=20)
    per_account_limit: int = Field(default=DEFAULT_PER_ACCOUNT_LIMIT, ge=1, le=100)
    seat_selectable: bool
    real_name_required: bool = False
    refund_policy: RefundPolicy = Field(default_factory=RefundPolicy)
    high_heat: bool = False
    issue_time: AwareDatetime | None = None
    payment_minutes: int = Field(default=DEFAULT_PAYMENT_MINUTES, ge=1, le=120)
    show_times: list[ShowTimeSpec] = Field(min_length=1, max_length=MAX_SHOW_TIMES)


class IdSource(Protocol):
    def next_entity_id(self) -> int: ...


class CatalogueReferences(Protocol):
    """What the decision needs to know about reference data (answered by the read side)."""

    def area_exists(self, area_id: int) -> bool: ...

    def category_exists(self, category_id: int) -> bool: ...

    def parent_of(self, category_id: int) -> int | None:
        """The parent of a child category; None for a top-level (or unknown) one."""
        ...


class KnownReferences:
    """A snapshot of the reference data a command names, as the read side answered."""

    def __init__(self, areas: set[int], category_parents: dict[int, int | None]):
        self._areas = areas
        self._parents = category_parents

    def area_exists(self, area_id: int) -> bool:
        return area_id in self._areas

    def category_exists(self, category_id: int) -> bool:
        return category_id in self._parents

    def parent_of(self, category_id: int) -> int | None:
        return self._parents.get(category_id)


def create_program(cmd: CreateProgram, refs: CatalogueReferences, ids: IdSource, now: datetime) -> list[ProgramEvent]:
    """Decide a new program; return its events in order (versions 1..n)."""
    _check_references(cmd, refs)
    _check_limits(cmd)
    program_id = ids.next_entity_id()
    events: list[ProgramEvent] = [
        ProgramCreated(
            program_id=program_id,
            title=cmd.title.strip(),
            actor=cmd.actor,
            venue=cmd.venue.strip(),
            area_id=cmd.area_id,
            parent_category_id=cmd.parent_category_id,
            category_id=cmd.category_id,
            detail=cmd.detail,
            notices=cmd.notices,
            per_order_limit=cmd.per_order_limit,
            per_account_limit=cmd.per_account_limit,
            seat_selectable=cmd.seat_selectable,
            real_name_required=cmd.real_name_required,
            refund_policy=cmd.refund_policy,
            high_heat=cmd.high_heat,
            issue_time=cmd.issue_time,
            payment_minutes=cmd.payment_minutes,
        )
    ]
    for show in cmd.show_times:
        if show.starts_at <= now:
            raise InvalidCommand(
                "a show time must be in the future",
                code="SHOW_TIME_IN_PAST",
                details={"startsAt": show.starts_at.isoformat()},
            )
        events += _show_time_events(cmd, program_id, show, ids)
    return events


def _check_references(cmd: CreateProgram, refs: CatalogueReferences) -> None:
    if not refs.area_exists(cmd.area_id):
        raise InvalidCommand(f"area {cmd.area_id} does not exist", code="AREA_UNKNOWN", details={"areaId": cmd.area_id})
    if not refs.category_exists(cmd.parent_category_id) or refs.parent_of(cmd.parent_category_id) is not None:
        raise InvalidCommand(
            f"{cmd.parent_category_id} is not a top-level category",
            code="PARENT_CATEGORY_UNKNOWN",
            details={"parentCategoryId": cmd.parent_category_id},
        )
    if not refs.category_exists(cmd.category_id) or refs.parent_of(cmd.category_id) != cmd.parent_category_id:
        raise InvalidCommand(
            f"category {cmd.category_id} is not a child of {cmd.parent_category_id}",
            code="CATEGORY_MISMATCH",
            details={"categoryId": cmd.category_id, "parentCategoryId": cmd.parent_category_id},
        )


def _check_limits(cmd: CreateProgram) -> None:
    if cmd.per_order_limit > cmd.per_account_limit:
        raise InvalidCommand("the per-order limit cannot exceed the per-account limit", code="LIMITS_INCONSISTENT")


def _show_time_events(cmd: CreateProgram, program_id: int, show: ShowTimeSpec, ids: IdSource) -> list[ProgramEvent]:
    show_time_id = ids.next_entity_id()
    events: list[ProgramEvent] = [
        ShowTimeAdded(program_id=program_id, show_time_id=show_time_id, starts_at=show.starts_at)
    ]
    taken: set[tuple[int, int]] = set()
    for category in show.ticket_categories:
        if category.has_seats != cmd.seat_selectable:
            raise InvalidCommand(
                "ticket categories need a seat layout exactly when seats can be chosen",
                code="SEAT_LAYOUT_MISMATCH",
                details={"ticketCategory": category.name},
            )
        ticket_category_id = ids.next_entity_id()
        seats = _seats(category, taken, ids)
        events.append(
            TicketCategoryAdded(
                program_id=program_id,
                show_time_id=show_time_id,
                ticket_category_id=ticket_category_id,
                name=category.name.strip(),
                price=category.price,
                total=len(seats) if category.has_seats else category.total or 0,
            )
        )
        events += [
            SeatsLaidOut(
                program_id=program_id,
                show_time_id=show_time_id,
                ticket_category_id=ticket_category_id,
                seats=seats[i : i + SEATS_PER_EVENT],
            )
            for i in range(0, len(seats), SEATS_PER_EVENT)
        ]
    return events


def _seats(category: TicketCategorySpec, taken: set[tuple[int, int]], ids: IdSource) -> list[SeatSpec]:
    seats = []
    for row, column, price in category.seat_positions():
        if (row, column) in taken:
            raise InvalidCommand(
                f"seat row {row} column {column} is laid out twice",
                code="SEAT_DUPLICATE",
                details={"row": row, "column": column},
            )
        if price != category.price:
            # A seat is sold at its category's price; the allocator checks the same equality.
            raise InvalidCommand(
                "a seat's price must equal its ticket category's price",
                code="SEAT_PRICE_MISMATCH",
                details={"row": row, "column": column, "price": str(price)},
            )
        taken.add((row, column))
        seats.append(SeatSpec(seat_id=ids.next_entity_id(), row=row, column=column, price=price))
    return seats


class TakeOffSale(Command):
    reason: str = Field(default="", max_length=200)


def _require_known(program_id: int, status: str | None) -> str:
    if status is None:
        raise NotFound(f"no program {program_id}", code="PROGRAM_NOT_FOUND", details={"programId": program_id})
    return status


def publish_program(program_id: int, status: str | None) -> ProgramPublished:
    """A draft or off-sale program goes on sale."""
    if _require_known(program_id, status) == "on_sale":
        raise Conflict("the program is already on sale", code="PROGRAM_ALREADY_ON_SALE")
    return ProgramPublished(program_id=program_id)


def take_off_sale(program_id: int, status: str | None, cmd: TakeOffSale) -> ProgramTakenOffSale:
    """Only a program on sale can be taken off sale."""
    if _require_known(program_id, status) != "on_sale":
        raise Conflict("the program is not on sale", code="PROGRAM_NOT_ON_SALE")
    return ProgramTakenOffSale(program_id=program_id, reason=cmd.reason.strip())


class RescheduleShowTime(Command):
    starts_at: AwareDatetime


class RepriceTicketCategory(Command):
    price: PriceIn


def reschedule_show_time(
    program_id: int,
    program_status: str | None,
    show_time_id: int,
    current_starts_at: datetime | None,
    cmd: RescheduleShowTime,
    now: datetime,
) -> list[ShowTimeRescheduled]:
    """Move a show time that has not started to a time in the future; nothing when it is already there."""
    _require_known(program_id, program_status)
    if current_starts_at is None:
        raise NotFound(
            f"program {program_id} has no show time {show_time_id}",
            code="SHOW_TIME_NOT_FOUND",
            details={"programId": program_id, "showTimeId": show_time_id},
        )
    if current_starts_at <= now:
        raise Conflict("the show time has already started", code="SHOW_TIME_STARTED")
    if cmd.starts_at <= now:
        raise InvalidCommand(
            "a show time must be in the future",
            code="SHOW_TIME_IN_PAST",
            details={"startsAt": cmd.starts_at.isoformat()},
        )
    if cmd.starts_at == current_starts_at:
        return []
    return [
        ShowTimeRescheduled(
            program_id=program_id,
            show_time_id=show_time_id,
            starts_at=cmd.starts_at,
            previous_starts_at=current_starts_at,
        )
    ]


def reprice_ticket_category(
    program_id: int,
    program_status: str | None,
    ticket_category_id: int,
    current: tuple[int, Price] | None,
    cmd: RepriceTicketCategory,
) -> list[TicketCategoryRepriced]:
    """Give a ticket category (show time id and price in ``current``) a new price; nothing when unchanged."""
    _require_known(program_id, program_status)
    if current is None:
        raise NotFound(
            f"program {program_id} has no ticket category {ticket_category_id}",
            code="TICKET_CATEGORY_NOT_FOUND",
            details={"programId": program_id, "ticketCategoryId": ticket_category_id},
        )
    show_time_id, price = current
    if cmd.price == price:
        return []
    return [
        TicketCategoryRepriced(
            program_id=program_id,
            show_time_id=show_time_id,
            ticket_category_id=ticket_category_id,
            price=cmd.price,
            previous_price=price,
        )
    ]
