"""Commands on reference data: creating areas and program categories, and their handlers.

An area and a category are aggregates created once (``aggregates/reference.py``): a handler
loads the one it would create and its parent as the log has them, decides with the rules below,
and appends the one event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from aggregates.errors import Conflict, InvalidCommand
from aggregates.reference import Area, Category, area_key, category_key
from commands.ports import AggregateStore, change
from events.reference import AreaCreated, AreaLevel, CategoryCreated, SortOrder, Text

# Administrative division codes are six digits (e.g. 310000 Shanghai).
AREA_CODE_MIN = 100000
AREA_CODE_MAX = 999999
AREA_NAME_MAX_LENGTH = 64
CATEGORY_ID_MAX = 9999
CATEGORY_NAME_MAX_LENGTH = 32


class CreateArea(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    area_id: int = Field(ge=AREA_CODE_MIN, le=AREA_CODE_MAX)
    name: Text = Field(min_length=1, max_length=AREA_NAME_MAX_LENGTH)
    level: AreaLevel
    parent_id: int | None = Field(default=None, ge=AREA_CODE_MIN, le=AREA_CODE_MAX)


class KnownAreas:
    """What the decision needs to know about existing areas (answered by the read side)."""

    def __init__(self, existing_ids: set[int]):
        self._existing = existing_ids

    def exists(self, area_id: int) -> bool:
        return area_id in self._existing


def create_area(cmd: CreateArea, known: KnownAreas) -> AreaCreated:
    """Decide whether an area may be created; return the fact to append."""
    name = cmd.name.strip()
    if not name:
        raise InvalidCommand("area name is blank", code="AREA_NAME_BLANK")
    if known.exists(cmd.area_id):
        raise Conflict(f"area {cmd.area_id} already exists", code="AREA_EXISTS", details={"areaId": cmd.area_id})
    if cmd.level is AreaLevel.PROVINCE and cmd.parent_id is not None:
        raise InvalidCommand("a province has no parent area", code="AREA_PARENT_NOT_ALLOWED")
    # Municipalities (Beijing, Shanghai, ...) are cities without a province above them.
    if cmd.level is AreaLevel.DISTRICT and cmd.parent_id is None:
        raise InvalidCommand("a district needs a parent area", code="AREA_PARENT_REQUIRED")
    if cmd.parent_id is not None and not known.exists(cmd.parent_id):
        raise InvalidCommand(
            f"parent area {cmd.parent_id} does not exist",
            code="AREA_PARENT_UNKNOWN",
            details={"parentId": cmd.parent_id},
        )
    return AreaCreated(area_id=cmd.area_id, name=name, level=cmd.level, parent_id=cmd.parent_id)


class CreateCategory(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    category_id: int = Field(ge=1, le=CATEGORY_ID_MAX)
    name: Text = Field(min_length=1, max_length=CATEGORY_NAME_MAX_LENGTH)
    parent_id: int | None = Field(default=None, ge=1, le=CATEGORY_ID_MAX)
    sort_order: SortOrder = 0


class KnownCategories:
    """Existing categories and their parents (None for a parent category), from the read side."""

    def __init__(self, parents_by_id: dict[int, int | None]):
        self._parents = parents_by_id

    def exists(self, category_id: int) -> bool:
        return category_id in self._parents

    def is_parent_category(self, category_id: int) -> bool:
        return category_id in self._parents and self._parents[category_id] is None


def create_category(cmd: CreateCategory, known: KnownCategories) -> CategoryCreated:
    """Categories are two levels deep: a child's parent must be an existing parent category."""
    name = cmd.name.strip()
    if not name:
        raise InvalidCommand("category name is blank", code="CATEGORY_NAME_BLANK")
    if known.exists(cmd.category_id):
        raise Conflict(
            f"category {cmd.category_id} already exists",
            code="CATEGORY_EXISTS",
            details={"categoryId": cmd.category_id},
        )
    if cmd.parent_id is not None and not known.is_parent_category(cmd.parent_id):
        code = "CATEGORY_PARENT_NOT_TOP_LEVEL" if known.exists(cmd.parent_id) else "CATEGORY_PARENT_UNKNOWN"
        raise InvalidCommand(
            f"parent category {cmd.parent_id} is not an existing top-level category",
            code=code,
            details={"parentId": cmd.parent_id},
        )
    return CategoryCreated(category_id=cmd.category_id, name=name, parent_id=cmd.parent_id, sort_order=cmd.sort_order)


@dataclass(frozen=True)
class Reference:
    """What the reference data handlers work with."""

    store: AggregateStore


async def add_area(cmd: CreateArea, reference: Reference, correlation_id: uuid.UUID | None) -> uuid.UUID:
    """Create an area; return its event's id. A second creation of one area is 409 AREA_EXISTS,
    however close behind the first."""
    parent = await reference.store.load(Area, area_key(cmd.parent_id)) if cmd.parent_id is not None else None

    def decide(existing: Area | None) -> Area:
        created = create_area(cmd, KnownAreas({a.area_id for a in (existing, parent) if a is not None}))
        return Area(area_id=created.area_id, name=created.name, level=created.level, parent_id=created.parent_id)

    _, [event_id] = await change(reference.store, Area, area_key(cmd.area_id), decide, correlation_id)
    return event_id


async def add_category(cmd: CreateCategory, reference: Reference, correlation_id: uuid.UUID | None) -> uuid.UUID:
    """Create a top-level category, or a child under one; return its event's id. A second creation
    of one category is 409 CATEGORY_EXISTS, however close behind the first."""
    parent = (
        await reference.store.load(Category, category_key(cmd.parent_id)) if cmd.parent_id is not None else None
    )

    def decide(existing: Category | None) -> Category:
        known = KnownCategories({c.category_id: c.parent_id for c in (existing, parent) if c is not None})
        created = create_category(cmd, known)
        return Category(
            category_id=created.category_id,
            name=created.name,
            parent_id=created.parent_id,
            sort_order=created.sort_order,
        )

    _, [event_id] = await change(reference.store, Category, category_key(cmd.category_id), decide, correlation_id)
    return event_id
