"""Reference data: areas and categories. Admin creates them (commands); anyone lists them (queries)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field

from api.auth import require_admin
from api.commands import CorrelationDep, handled
from api.errors import ApiError
from api.models import AreaIdPath, CamelModel
from api.resources import ResourcesDep
from commands.reference import CreateArea, CreateCategory, add_area, add_category
from events.reference import AreaId
from queries.views.reference import AreaView, CategoryView, get_area, list_areas, list_categories

router = APIRouter(tags=["reference"])
admin_router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])


class AreaOut(CamelModel):
    id: int
    name: str
    level: str
    parent_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, view: AreaView) -> AreaOut:
        return cls(id=view.id, name=view.name, level=view.level, parent_id=view.parent_id, created_at=view.created_at)


class AreaAccepted(CamelModel):
    area_id: int
    event_id: str


@admin_router.post("/api/v1/admin/areas", status_code=202, response_model=AreaAccepted, response_model_by_alias=True)
async def post_area(
    cmd: CreateArea, response: Response, res: ResourcesDep, correlation: CorrelationDep
) -> AreaAccepted:
    """Create an area; it appears in queries once projected (202 + Location)."""
    event_id = await handled(add_area(cmd, res.commands.reference, correlation))
    response.headers["Location"] = f"/api/v1/areas/{cmd.area_id}"
    return AreaAccepted(area_id=cmd.area_id, event_id=str(event_id))


@router.get("/api/v1/areas", response_model=list[AreaOut], response_model_by_alias=True)
async def get_areas(
    res: ResourcesDep, parent_id: Annotated[AreaId | None, Query(alias="parentId")] = None
) -> list[AreaOut]:
    return [AreaOut.of(a) for a in await list_areas(res.db, parent_id=parent_id)]


@router.get("/api/v1/areas/{area_id}", response_model=AreaOut, response_model_by_alias=True)
async def get_one_area(area_id: AreaIdPath, res: ResourcesDep) -> AreaOut:
    area = await get_area(res.db, area_id)
    if area is None:
        raise ApiError(404, "AREA_NOT_FOUND", f"no area {area_id}", {"areaId": area_id})
    return AreaOut.of(area)


class CategoryOut(CamelModel):
    id: int
    name: str
    sort_order: int
    children: list[CategoryOut] = Field(default_factory=list)

    @classmethod
    def of(cls, view: CategoryView, children: list[CategoryOut] | None = None) -> CategoryOut:
        return cls(id=view.id, name=view.name, sort_order=view.sort_order, children=children or [])


class CategoryAccepted(CamelModel):
    category_id: int
    event_id: str


@admin_router.post(
    "/api/v1/admin/categories", status_code=202, response_model=CategoryAccepted, response_model_by_alias=True
)
async def post_category(
    cmd: CreateCategory, response: Response, res: ResourcesDep, correlation: CorrelationDep
) -> CategoryAccepted:
    """Create a top-level category, or a child under one; it appears in queries once projected."""
    event_id = await handled(add_category(cmd, res.commands.reference, correlation))
    response.headers["Location"] = "/api/v1/categories"
    return CategoryAccepted(category_id=cmd.category_id, event_id=str(event_id))


@router.get("/api/v1/categories", response_model=list[CategoryOut], response_model_by_alias=True)
async def get_categories(res: ResourcesDep) -> list[CategoryOut]:
    """Top-level categories in display order, each with its children."""
    views = await list_categories(res.db)
    children: dict[int, list[CategoryOut]] = {}
    for view in views:
        if view.parent_id is not None:
            children.setdefault(view.parent_id, []).append(CategoryOut.of(view))
    return [CategoryOut.of(v, children.get(v.id)) for v in views if v.parent_id is None]
