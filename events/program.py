"""Program catalogue events: a program, its show times, ticket categories and seat layout.

All events of one program share the aggregate ``program-<id>`` and the Kafka key, so they are
applied in order by the one consumer that owns its partition.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from events.base import DomainEvent
from events.reference import POSTGRES_INTEGER_MAX, AreaId, CategoryId, Text
from events.registry import register_event

PROGRAM_FAMILY = "program"

# What the read models hold (infra/postgres/migrations/0008_program.sql, the Redis inventory).
# A payload past these could not be projected whole, so it is not a valid event: the projectors
# dead-letter it instead of turning it into a read that fails on every request.
POSTGRES_BIGINT_MAX = (1 << 63) - 1
POSTGRES_SMALLINT_MAX = (1 << 15) - 1
SEAT_COLUMN_MAX = 99_999
"""Below the inventory's row stride (infra/redis_keys.py:SEAT_ROW_STRIDE), so a row's seats are one score range."""
REFUND_DEADLINE_HOURS_MAX = 24 * 365

EntityId = Annotated[int, Field(ge=1, le=POSTGRES_BIGINT_MAX)]
"""A program's, show time's, ticket category's or seat's id: a positive 63-bit integer."""
TicketCount = Annotated[int, Field(ge=0, le=POSTGRES_INTEGER_MAX)]
SmallCount = Annotated[int, Field(ge=1, le=POSTGRES_SMALLINT_MAX)]
"""A per-program limit (tickets per order or account, minutes to pay)."""
StoredPrice = Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)]
"""Yuan as the read model's ``numeric(10,2)`` holds it."""
SeatRow = Annotated[int, Field(ge=1, le=POSTGRES_INTEGER_MAX)]
SeatColumn = Annotated[int, Field(ge=1, le=SEAT_COLUMN_MAX)]

EARLIEST_MOMENT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_MOMENT = datetime(9000, 1, 1, tzinfo=UTC)
"""Show and issue times lie in [EARLIEST_MOMENT, LATEST_MOMENT): far from the ends of Python's
calendar (years 1 to 9999), so a time in any offset is an instant that Postgres, Elasticsearch and
every reader hold, with room for calendar arithmetic (a search window's next day)."""
Moment = Annotated[datetime, Field(ge=EARLIEST_MOMENT, lt=LATEST_MOMENT)]


def program_key(program_id: int) -> str:
    return f"program-{program_id}"


class ProgramEvent(DomainEvent):
    topic_family = PROGRAM_FAMILY

    program_id: EntityId

    def aggregate_key(self) -> str:
        return program_key(self.program_id)


class RefundPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    refundable: bool = False
    deadline_hours_before_show: int = Field(default=0, ge=0, le=REFUND_DEADLINE_HOURS_MAX)
    """Refunds are accepted until this many hours before the show time starts."""


@register_event
class ProgramCreated(ProgramEvent):
    """A program entered the catalogue as a draft (not visible to buyers until published)."""

    event_type = "ProgramCreated"

    title: Text
    actor: Text | None = None
    venue: Text
    area_id: AreaId
    parent_category_id: CategoryId
    category_id: CategoryId
    detail: Text = ""
    notices: list[Text] = Field(default_factory=list)
    per_order_limit: SmallCount
    per_account_limit: SmallCount
    seat_selectable: bool
    real_name_required: bool
    refund_policy: RefundPolicy = Field(default_factory=RefundPolicy)
    high_heat: bool = False
    issue_time: Moment | None = None
    payment_minutes: SmallCount


@register_event
class ShowTimeAdded(ProgramEvent):
    event_type = "ShowTimeAdded"

    show_time_id: EntityId
    starts_at: Moment


@register_event
class TicketCategoryAdded(ProgramEvent):
    event_type = "TicketCategoryAdded"

    show_time_id: EntityId
    ticket_category_id: EntityId
    name: Text
    price: StoredPrice
    total: TicketCount


class SeatSpec(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    seat_id: EntityId
    row: SeatRow
    column: SeatColumn
    price: StoredPrice


@register_event
class SeatsLaidOut(ProgramEvent):
    """One chunk of a ticket category's seats (a big venue's layout spans several events)."""

    event_type = "SeatsLaidOut"

    show_time_id: EntityId
    ticket_category_id: EntityId
    seats: list[SeatSpec]


@register_event
class ShowTimeRescheduled(ProgramEvent):
    """A show time moved; ticket categories, seats and orders stay with it."""

    event_type = "ShowTimeRescheduled"

    show_time_id: EntityId
    starts_at: Moment
    previous_starts_at: Moment


@register_event
class TicketCategoryRepriced(ProgramEvent):
    """A ticket category (and every seat in it) has a new price for orders decided from now on;
    tickets already reserved keep the price they were reserved at."""

    event_type = "TicketCategoryRepriced"

    show_time_id: EntityId
    ticket_category_id: EntityId
    price: StoredPrice
    previous_price: StoredPrice


@register_event
class ProgramPublished(ProgramEvent):
    """The program is on sale: visible, searchable, purchasable."""

    event_type = "ProgramPublished"


@register_event
class ProgramTakenOffSale(ProgramEvent):
    event_type = "ProgramTakenOffSale"

    reason: Text = ""
