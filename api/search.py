"""Program list and search (GET /api/v1/programs) and the home page (GET /api/v1/home).

Both answer identical requests from a short-lived cache of encoded pages (``search_cache_ttl_s``,
queries/cache/micro.py): during an on-sale most buyers ask the same few questions.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import Field, TypeAdapter

from api.errors import ApiError
from api.resources import Resources, ResourcesDep
from events.program import EARLIEST_MOMENT, LATEST_MOMENT
from events.reference import AreaId, CategoryId, Text
from queries.search import PAGE_SIZE_MAX, RESULT_WINDOW, ProgramQuery, SortOrder, TimeWindow
from queries.shapes import HomeSectionOut, ProgramPageOut
from queries.views.reference import existing_area_ids, list_categories

router = APIRouter(tags=["programs"])

PAGE_DEPTH = f"page × size is at most {RESULT_WINDOW}, the deepest hit the search serves (422 PAGE_TOO_DEEP beyond)"
FIRST_DAY, LAST_DAY = EARLIEST_MOMENT.date(), (LATEST_MOMENT - timedelta(days=1)).date()
SearchDay = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]
"""A calendar day a search window may name: a day on which show times can be (events/program.py)."""
DAYS = f"a day from {FIRST_DAY} to {LAST_DAY}, with timeWindow=range"


@router.get("/api/v1/programs", response_model=ProgramPageOut, response_model_by_alias=True)
async def get_programs(
    res: ResourcesDep,
    keyword: Annotated[Text | None, Query(min_length=1, max_length=64)] = None,
    area_id: Annotated[AreaId | None, Query(alias="areaId")] = None,
    parent_category_id: Annotated[CategoryId | None, Query(alias="parentCategoryId")] = None,
    category_id: Annotated[CategoryId | None, Query(alias="categoryId")] = None,
    time_window: Annotated[TimeWindow, Query(alias="timeWindow")] = TimeWindow.ALL,
    start_date: Annotated[SearchDay | None, Query(alias="startDate", description=DAYS)] = None,
    end_date: Annotated[SearchDay | None, Query(alias="endDate", description=DAYS)] = None,
    sort: SortOrder = SortOrder.RELEVANCE,
    page: Annotated[int, Query(ge=1, le=1000, description=PAGE_DEPTH)] = 1,
    size: Annotated[
        # The maximum is documented, and answered with its own code (not VALIDATION_FAILED).
        int, Query(ge=1, json_schema_extra={"maximum": PAGE_SIZE_MAX}, description=PAGE_DEPTH)
    ] = 10,
    hide_sold_out: Annotated[
        bool,
        Query(
            alias="hideSoldOut",
            description="Only programs with tickets left; with a time window, a show time in it with tickets left",
        ),
    ] = False,
) -> Response:
    """Programs on sale: keyword over title and actor (highlighted), filters, calendar windows, sort, paging."""
    if size > PAGE_SIZE_MAX:
        raise ApiError(422, "PAGE_SIZE_TOO_LARGE", f"size is at most {PAGE_SIZE_MAX}")
    if time_window is TimeWindow.RANGE and (start_date is None or end_date is None or start_date > end_date):
        raise ApiError(422, "BAD_DATE_RANGE", "timeWindow=range needs startDate <= endDate")
    query = ProgramQuery(
        keyword, area_id, parent_category_id, category_id, time_window, start_date, end_date, sort, page, size
    )
    query = replace(query, hide_sold_out=hide_sold_out)
    if query.too_deep:
        raise ApiError(422, "PAGE_TOO_DEEP", PAGE_DEPTH, {"page": page, "size": size, "resultWindow": RESULT_WINDOW})
    now = datetime.now(UTC)
    # Calendar windows ("today", "this week") depend on the day: it is part of the key.
    key = (query, now.astimezone(res.reads.search.zone).date())
    body = await res.reads.search_pages.get(key, lambda: _search_page(res, query, now))
    return Response(body, media_type="application/json")


async def _search_page(res: Resources, query: ProgramQuery, now: datetime) -> bytes:
    found = await res.reads.search.page(query, now)
    page = ProgramPageOut(total=found.total, page=query.page, size=query.size, items=found.hits)
    return page.model_dump_json(by_alias=True).encode()


HOME_PAGE = TypeAdapter(list[HomeSectionOut])


@router.get(
    "/api/v1/home",
    response_model=list[HomeSectionOut],
    response_model_by_alias=True,
    responses={404: {"description": "AREA_NOT_FOUND: areaId names no area"}},
)
async def get_home(res: ResourcesDep, area_id: Annotated[AreaId | None, Query(alias="areaId")] = None) -> Response:
    """For each top-level category, the first programs on sale in the area (a default area when none is given)."""
    area = area_id or res.settings.api.home_default_area_id
    now = datetime.now(UTC)
    key = ("home", area, area_id is not None, now.astimezone(res.reads.search.zone).date())
    body = await res.reads.search_pages.get(key, lambda: _home(res, area, now, named=area_id is not None))
    return Response(body, media_type="application/json")


async def _home(res: Resources, area_id: int, now: datetime, *, named: bool) -> bytes:
    if named and not await existing_area_ids(res.db, [area_id]):
        raise ApiError(404, "AREA_NOT_FOUND", f"no area {area_id}", {"areaId": area_id})
    parents = [c for c in await list_categories(res.db) if c.parent_id is None]
    sections = await res.reads.search.first_per_category(
        area_id, [c.id for c in parents], res.settings.api.home_programs_per_category, now
    )
    return HOME_PAGE.dump_json(
        [HomeSectionOut(category_id=c.id, category_name=c.name, programs=sections[c.id]) for c in parents],
        by_alias=True,
    )
