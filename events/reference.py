"""Reference data events: the areas (cities) programs are held in, and the program categories."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from events.base import DomainEvent
from events.registry import register_event


class AreaLevel(StrEnum):
    PROVINCE = "province"
    CITY = "city"
    DISTRICT = "district"


@register_event
class AreaCreated(DomainEvent):
    """An area joined the reference data, identified by its administrative division code."""

    event_type = "AreaCreated"
    topic_family = "reference"

    area_id: int = Field(gt=0)
    name: str
    level: AreaLevel
    parent_id: int | None = None

    def aggregate_key(self) -> str:
        return f"area-{self.area_id}"


@register_event
class CategoryCreated(DomainEvent):
    """A program category joined the reference data: a parent, or a child under one parent."""

    event_type = "CategoryCreated"
    topic_family = "reference"

    category_id: int = Field(gt=0)
    name: str
    parent_id: int | None = None
    sort_order: int = 0

    def aggregate_key(self) -> str:
        return f"category-{self.category_id}"
