"""Reference data events: the areas (cities) programs are held in, and the program categories."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from events.base import DomainEvent
from events.registry import register_event

POSTGRES_INTEGER_MAX = (1 << 31) - 1
"""The largest value of a Postgres ``integer`` column: what the read models hold for reference ids
and counts. A payload past it could not be projected, so it is not a valid event."""

Text = Annotated[str, Field(pattern=r"^[^\x00]*$")]
"""Text as Postgres ``text`` and the log's UTF-8 hold it: no NUL character (and, as for any
string pydantic validates against a pattern, no lone surrogate)."""

AreaId = Annotated[int, Field(ge=1, le=POSTGRES_INTEGER_MAX)]
"""An area's id (its administrative division code) as the read models hold it."""
CategoryId = Annotated[int, Field(ge=1, le=POSTGRES_INTEGER_MAX)]
"""A program category's id as the read models hold it."""
SortOrder = Annotated[int, Field(ge=0, le=POSTGRES_INTEGER_MAX)]
"""Where a category comes in display order (smallest first)."""


class AreaLevel(StrEnum):
    PROVINCE = "province"
    CITY = "city"
    DISTRICT = "district"


@register_event
class AreaCreated(DomainEvent):
    """An area joined the reference data, identified by its administrative division code."""

    event_type = "AreaCreated"
    topic_family = "reference"

    area_id: AreaId
    name: Text
    level: AreaLevel
    parent_id: AreaId | None = None

    def aggregate_key(self) -> str:
        return f"area-{self.area_id}"


@register_event
class CategoryCreated(DomainEvent):
    """A program category joined the reference data: a parent, or a child under one parent."""

    event_type = "CategoryCreated"
    topic_family = "reference"

    category_id: CategoryId
    name: Text
    parent_id: CategoryId | None = None
    sort_order: SortOrder = 0

    def aggregate_key(self) -> str:
        return f"category-{self.category_id}"
