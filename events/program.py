"""Program catalogue events: a program, its show times, ticket categories and seat layout.

All events of one program share the aggregate ``program-<id>`` and the Kafka key, so they are
applied in order by the one consumer that owns its partition.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from events.base import DomainEvent
from events.registry import register_event

PROGRAM_FAMILY = "program"


def program_key(program_id: int) -> str:
    return f"program-{program_id}"


class ProgramEvent(DomainEvent):
    topic_family = PROGRAM_FAMILY

    program_id: int = Field(gt=0)

    def aggregate_key(self) -> str:
        return program_key(self.program_id)


class RefundPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    refundable: bool = False
    deadline_hours_before_show: int = Field(default=0, ge=0)
    """Refunds are accepted until this many hours before the show time starts."""


@register_event
class ProgramCreated(ProgramEvent):
    """A program entered the catalogue as a draft (not visible to buyers until published)."""

    event_type = "ProgramCreated"

    title: str
    actor: str | None = None
    venue: str
    area_id: int
    parent_category_id: int
    category_id: int
    detail: str = ""
    notices: list[str] = Field(default_factory=list)
    per_order_limit: int = Field(ge=1)
    per_account_limit: int = Field(ge=1)
    seat_selectable: bool
    real_name_required: bool
    refund_policy: RefundPolicy = Field(default_factory=RefundPolicy)
    high_heat: bool = False
    issue_time: datetime | None = None
    payment_minutes: int = Field(ge=1)


@register_event
class ShowTimeAdded(ProgramEvent):
    event_type = "ShowTimeAdded"

    show_time_id: int = Field(gt=0)
    starts_at: datetime


@register_event
class TicketCategoryAdded(ProgramEvent):
    event_type = "TicketCategoryAdded"

    show_time_id: int = Field(gt=0)
    ticket_category_id: int = Field(gt=0)
    name: str
    price: Decimal = Field(ge=0, decimal_places=2)
    total: int = Field(ge=0)


class SeatSpec(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    seat_id: int = Field(gt=0)
    row: int = Field(ge=1)
    column: int = Field(ge=1)
    price: Decimal = Field(ge=0, decimal_places=2)


@register_event
class SeatsLaidOut(ProgramEvent):
    """One chunk of a ticket category's seats (a big venue's layout spans several events)."""

    event_type = "SeatsLaidOut"

    show_time_id: int = Field(gt=0)
    ticket_category_id: int = Field(gt=0)
    seats: list[SeatSpec]


@register_event
class ShowTimeRescheduled(ProgramEvent):
    """A show time moved; ticket categories, seats and orders stay with it."""

    event_type = "ShowTimeRescheduled"

    show_time_id: int = Field(gt=0)
    starts_at: datetime
    previous_starts_at: datetime


@register_event
class TicketCategoryRepriced(ProgramEvent):
    """A ticket category (and every seat in it) has a new price for orders decided from now on;
    tickets already reserved keep the price they were reserved at."""

    event_type = "TicketCategoryRepriced"

    show_time_id: int = Field(gt=0)
    ticket_category_id: int = Field(gt=0)
    price: Decimal = Field(ge=0, decimal_places=2)
    previous_price: Decimal = Field(ge=0, decimal_places=2)


@register_event
class ProgramPublished(ProgramEvent):
    """The program is on sale: visible, searchable, purchasable."""

    event_type = "ProgramPublished"


@register_event
class ProgramTakenOffSale(ProgramEvent):
    event_type = "ProgramTakenOffSale"

    reason: str = ""
