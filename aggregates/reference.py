"""Reference data as aggregates: an area and a program category are created once and never change.

They are aggregates so that a command sees them as the log has them, like a program: creating a
child area right after its parent works, and two creations of one area cannot both be accepted
(the second claims a version the first already holds and is answered 409).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event

from aggregates.base import Aggregate
from events.reference import AreaLevel


def area_key(area_id: int) -> str:
    return f"area-{area_id}"


def category_key(category_id: int) -> str:
    return f"category-{category_id}"


class Area(Aggregate):
    topic_family = "reference"

    area_id: int
    name: str
    level: AreaLevel
    parent_id: int | None

    @staticmethod
    def create_id(area_id: int) -> str:
        return area_key(area_id)

    def identity(self) -> dict[str, Any]:
        return {"area_id": self.area_id}

    @event("AreaCreated")
    def __init__(self, area_id: int, name: str, level: AreaLevel, parent_id: int | None) -> None:
        self.area_id = area_id
        self.name = name
        self.level = level
        self.parent_id = parent_id


class Category(Aggregate):
    topic_family = "reference"

    category_id: int
    name: str
    parent_id: int | None
    sort_order: int

    @staticmethod
    def create_id(category_id: int) -> str:
        return category_key(category_id)

    def identity(self) -> dict[str, Any]:
        return {"category_id": self.category_id}

    @event("CategoryCreated")
    def __init__(self, category_id: int, name: str, parent_id: int | None, sort_order: int) -> None:
        self.category_id = category_id
        self.name = name
        self.parent_id = parent_id
        self.sort_order = sort_order

    @property
    def is_top_level(self) -> bool:
        return self.parent_id is None
