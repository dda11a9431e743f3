"""Program catalogue commands: the requests an admin sends, and one handler for each.

A handler loads the Program aggregate as the log has it, lets it decide, and appends what it
decided (``commands.ports.change``); the routes, the demo seed and the CLI all call these.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from aggregates.errors import InvalidCommand
from aggregates.program import CatalogueReferences, Program, program_not_found
from aggregates.reference import Area, Category, area_key, category_key
from commands.ports import AggregateStore, Clock, IdSource, change
from events.program import EARLIEST_MOMENT, LATEST_MOMENT, RefundPolicy, SeatColumn, SeatRow, SeatSpec, program_key
from events.reference import POSTGRES_INTEGER_MAX, AreaId, CategoryId, Text

# Bounds of what the read models and the wire hold; they are the OpenAPI contract, not tunables.
# Ids, rows and columns are bounded by the event schemas' types (events/program.py), which are
# what the read models hold.
MAX_SHOW_TIMES = 50
MAX_TICKET_CATEGORIES = 20
MAX_GRID_SIDE = 500
# Yuan; well inside the read model's numeric(10,2).
MAX_PRICE = Decimal("1000000.00")
Price = Decimal
PriceIn = Annotated[Price, Field(ge=0, le=MAX_PRICE, decimal_places=2)]
"""A price as a command gives it: yuan, two decimal places at most, up to ``MAX_PRICE``."""
NOTICE_MAX_LENGTH = 500
MAX_TICKETS_PER_CATEGORY = POSTGRES_INTEGER_MAX
"""A counted ticket category's ``total``: what the read model's ``integer`` count holds."""
MomentIn = Annotated[
    AwareDatetime,
    Field(
        ge=EARLIEST_MOMENT,
        lt=LATEST_MOMENT,
        description=f"with its offset; from {EARLIEST_MOMENT.isoformat()}, before {LATEST_MOMENT.isoformat()}",
    ),
]
"""A show or issue time as a command gives it: aware, within what every store holds."""


class CatalogueLimits(BaseModel):
    """The catalogue's tunable numbers (settings: ``DAMAI_CATALOGUE__*``)."""

    model_config = ConfigDict(frozen=True)

    default_per_order_limit: int = Field(
        default=6, ge=1, le=20, description="Tickets per order when a new program does not say."
    )
    default_per_account_limit: int = Field(
        default=6, ge=1, le=100, description="Tickets per buyer account and program when a new program does not say."
    )
    default_payment_minutes: int = Field(
        default=15, ge=1, le=120, description="Minutes an order waits for payment when a new program does not say."
    )
    seats_per_event: int = Field(
        default=1000,
        ge=1,
        le=5000,
        description="Seats per SeatsLaidOut event: keeps each Kafka message far below the broker's 1 MB.",
    )
    seats_per_show_time: int = Field(
        default=100_000,
        ge=1,
        le=1_000_000,
        description=(
            "Most seats one show time may lay out (LAYOUT_TOO_LARGE beyond): a command's seats are"
            " built in memory at once, and the demo's biggest venue has 50,000."
        ),
    )
    seats_per_program: int = Field(
        default=200_000,
        ge=1,
        le=5_000_000,
        description=(
            "Most seats one program may lay out over all its show times (LAYOUT_TOO_LARGE beyond): four"
            " sold-out stadium nights; about 3 s and 130 MB to build at once."
        ),
    )


class Command(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class SeatGrid(Command):
    """A rectangular block: ``rows`` × ``columns`` seats, rows numbered from ``first_row``."""

    rows: int = Field(ge=1, le=MAX_GRID_SIDE)
    columns: int = Field(ge=1, le=MAX_GRID_SIDE)
    first_row: SeatRow = 1

    @model_validator(mode="after")
    def _last_row_is_a_row(self) -> SeatGrid:
        last_row = self.first_row + self.rows - 1
        if last_row > POSTGRES_INTEGER_MAX:
            raise ValueError(f"the grid's last row {last_row} is past {POSTGRES_INTEGER_MAX}")
        return self


class SeatPosition(Command):
    row: SeatRow
    column: SeatColumn
    price: PriceIn


class TicketCategorySpec(Command):
    name: Text = Field(min_length=1, max_length=32)
    price: PriceIn
    total: int | None = Field(default=None, ge=1, le=MAX_TICKETS_PER_CATEGORY)
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

    @property
    def seat_count(self) -> int:
        """Seats this category lays out (0 when counted by ``total``), known without building them."""
        grid = self.seat_grid.rows * self.seat_grid.columns if self.seat_grid is not None else 0
        return grid + len(self.seats or ())


class ShowTimeSpec(Command):
    starts_at: MomentIn
    ticket_categories: list[TicketCategorySpec] = Field(min_length=1, max_length=MAX_TICKET_CATEGORIES)


class CreateProgram(Command):
    title: Text = Field(min_length=1, max_length=128)
    actor: Text | None = Field(default=None, max_length=128)
    venue: Text = Field(min_length=1, max_length=128)
    area_id: AreaId
    parent_category_id: CategoryId
    category_id: CategoryId
    detail: Text = Field(default="", max_length=20000)
    notices: list[Annotated[Text, Field(max_length=NOTICE_MAX_LENGTH)]] = Field(default_factory=list, max_length=20)
    per_order_limit: int | None = Field(default=None, ge=1, le=20)
    """Default: ``CatalogueLimits.default_per_order_limit``."""
    per_account_limit: int | None = Field(default=None, ge=1, le=100)
    """Default: ``CatalogueLimits.default_per_account_limit``."""
    seat_selectable: bool
    real_name_required: bool = False
    refund_policy: RefundPolicy = Field(default_factory=RefundPolicy)
    high_heat: bool = False
    issue_time: MomentIn | None = None
    payment_minutes: int | None = Field(default=None, ge=1, le=120)
    """Default: ``CatalogueLimits.default_payment_minutes``."""
    show_times: list[ShowTimeSpec] = Field(min_length=1, max_length=MAX_SHOW_TIMES)




class TakeOffSale(Command):
    reason: Text = Field(default="", max_length=200)


class RescheduleShowTime(Command):
    starts_at: MomentIn


class RepriceTicketCategory(Command):
    price: PriceIn


@dataclass(frozen=True)
class Catalogue:
    """What the catalogue handlers work with."""

    store: AggregateStore
    ids: IdSource
    clock: Clock
    limits: CatalogueLimits


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


def new_program(
    cmd: CreateProgram,
    refs: CatalogueReferences,
    ids: IdSource,
    now: datetime,
    limits: CatalogueLimits | None = None,
) -> Program:
    """Decide a new program with its show times, ticket categories and seats (nothing stored)."""
    limits = limits or CatalogueLimits()
    _check_layout_size(cmd, limits)
    program = Program.create(
        refs,
        program_id=ids.next_entity_id(),
        title=cmd.title.strip(),
        actor=cmd.actor,
        venue=cmd.venue.strip(),
        area_id=cmd.area_id,
        parent_category_id=cmd.parent_category_id,
        category_id=cmd.category_id,
        detail=cmd.detail,
        notices=cmd.notices,
        per_order_limit=cmd.per_order_limit or limits.default_per_order_limit,
        per_account_limit=cmd.per_account_limit or limits.default_per_account_limit,
        seat_selectable=cmd.seat_selectable,
        real_name_required=cmd.real_name_required,
        refund_policy=cmd.refund_policy,
        high_heat=cmd.high_heat,
        issue_time=cmd.issue_time,
        payment_minutes=cmd.payment_minutes or limits.default_payment_minutes,
    )
    for show in cmd.show_times:
        show_time_id = ids.next_entity_id()
        program.add_show_time(show_time_id, show.starts_at, now)
        taken: set[tuple[int, int]] = set()
        for category in show.ticket_categories:
            program.add_ticket_category(
                show_time_id,
                ids.next_entity_id(),
                category.name.strip(),
                category.price,
                total=category.total,
                seats=_seats(category, taken, ids) if category.has_seats else None,
                seats_per_event=limits.seats_per_event,
            )
    return program


def _check_layout_size(cmd: CreateProgram, limits: CatalogueLimits) -> None:
    """Refuse a show time with more seats than ``limits.seats_per_show_time``, or a program with more
    than ``limits.seats_per_program``, before any seat is built."""
    total = 0
    for show in cmd.show_times:
        seats = sum(category.seat_count for category in show.ticket_categories)
        if seats > limits.seats_per_show_time:
            raise InvalidCommand(
                f"a show time lays out {seats} seats, more than {limits.seats_per_show_time}",
                code="LAYOUT_TOO_LARGE",
                details={"startsAt": show.starts_at.isoformat(), "seats": seats, "limit": limits.seats_per_show_time},
            )
        total += seats
    if total > limits.seats_per_program:
        raise InvalidCommand(
            f"the program lays out {total} seats, more than {limits.seats_per_program}",
            code="LAYOUT_TOO_LARGE",
            details={"seats": total, "limit": limits.seats_per_program},
        )


def _seats(category: TicketCategorySpec, taken: set[tuple[int, int]], ids: IdSource) -> list[SeatSpec]:
    """The category's seats with new ids; a position is laid out once per show time."""
    seats = []
    for row, column, price in category.seat_positions():
        if (row, column) in taken:
            raise InvalidCommand(
                f"seat row {row} column {column} is laid out twice",
                code="SEAT_DUPLICATE",
                details={"row": row, "column": column},
            )
        taken.add((row, column))
        seats.append(SeatSpec(seat_id=ids.next_entity_id(), row=row, column=column, price=price))
    return seats


# -- handlers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    program_id: int
    events: int
    """Events appended; 0 when the command asked for what already is."""


async def create_program(cmd: CreateProgram, catalogue: Catalogue, correlation_id: uuid.UUID | None) -> Accepted:
    """Create a draft program with its show times, ticket categories and seat layout."""
    refs = await _references(cmd, catalogue.store)
    program = new_program(cmd, refs, catalogue.ids, catalogue.clock(), catalogue.limits)
    return Accepted(program.program_id, len(await catalogue.store.save(program, correlation_id)))


async def _references(cmd: CreateProgram, store: AggregateStore) -> KnownReferences:
    """The area and categories a new program names, as the log has them."""
    area = await store.load(Area, area_key(cmd.area_id))
    categories = [await store.load(Category, category_key(c)) for c in {cmd.parent_category_id, cmd.category_id}]
    return KnownReferences(
        {area.area_id} if area is not None else set(),
        {c.category_id: c.parent_id for c in categories if c is not None},
    )


async def publish_program(program_id: int, catalogue: Catalogue, correlation_id: uuid.UUID | None) -> Accepted:
    """Put a draft (or off-sale) program on sale."""
    return await _change_program(program_id, catalogue, correlation_id, lambda program: program.publish())


async def take_off_sale(
    program_id: int, cmd: TakeOffSale, catalogue: Catalogue, correlation_id: uuid.UUID | None
) -> Accepted:
    """Take a program off sale: it stays visible to its buyers but can no longer be bought."""
    return await _change_program(
        program_id, catalogue, correlation_id, lambda program: program.take_off_sale(cmd.reason.strip())
    )


async def reschedule_show_time(
    program_id: int,
    show_time_id: int,
    cmd: RescheduleShowTime,
    catalogue: Catalogue,
    correlation_id: uuid.UUID | None,
) -> Accepted:
    """Move a show time that has not started yet; its ticket categories, seats and orders go with it."""
    return await _change_program(
        program_id,
        catalogue,
        correlation_id,
        lambda program: program.reschedule_show_time(show_time_id, cmd.starts_at, catalogue.clock()),
    )


async def reprice_ticket_category(
    program_id: int,
    ticket_category_id: int,
    cmd: RepriceTicketCategory,
    catalogue: Catalogue,
    correlation_id: uuid.UUID | None,
) -> Accepted:
    """Change a ticket category's price (and its seats'): orders decided from now on pay it."""
    return await _change_program(
        program_id,
        catalogue,
        correlation_id,
        lambda program: program.reprice_ticket_category(ticket_category_id, cmd.price),
    )


async def _change_program(
    program_id: int, catalogue: Catalogue, correlation_id: uuid.UUID | None, act: Callable[[Program], None]
) -> Accepted:
    """Load the program as the log has it, let it decide (``act``), append what it decided."""

    def decide(program: Program | None) -> Program:
        if program is None:
            raise program_not_found(program_id)
        act(program)
        return program

    _, appended = await change(catalogue.store, Program, program_key(program_id), decide, correlation_id)
    return Accepted(program_id, len(appended))
