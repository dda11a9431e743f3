"""Program search on Elasticsearch: keyword over title and actor (highlighted), filters, calendar
windows in the platform's time zone, four sort orders, and paging with a total."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from elasticsearch import AsyncElasticsearch

from aggregates.program import ProgramStatus
from infra.metrics import SEARCH_FALLBACKS
from infra.postgres.sharded import ShardedDatabase
from infra.search import SEARCH_ERRORS, search_unavailable
from queries.breaker import Breaker
from queries.cache.remaining import RemainingCounts
from queries.search_document import hit_of_document, sold_out, sold_out_categories
from queries.shapes import HIGHLIGHT_ENCODER, HIGHLIGHT_TAGS, ProgramHitOut
from queries.views.program_search import full_route_search_programs


class TimeWindow(StrEnum):
    ALL = "all"
    TODAY = "today"
    TOMORROW = "tomorrow"
    WEEK = "week"
    MONTH = "month"
    RANGE = "range"


class SortOrder(StrEnum):
    RELEVANCE = "relevance"
    HEAT = "heat"
    SHOW_TIME = "showTime"
    ISSUE_TIME = "issueTime"


RESULT_WINDOW = 10_000
PAGE_SIZE_MAX = 50
"""Most programs one search page holds: part of the API's contract (its OpenAPI document)."""
"""The deepest hit a page may reach (``page × size``): Elasticsearch's ``index.max_result_window``,
its default, which the program index's template keeps (infra/search.py). The Postgres fallback
answers the same pages, each program table its best ``page × size``."""


@dataclass(frozen=True)
class ProgramQuery:
    keyword: str | None = None
    area_id: int | None = None
    parent_category_id: int | None = None
    category_id: int | None = None
    window: TimeWindow = TimeWindow.ALL
    start_date: date | None = None
    end_date: date | None = None
    sort: SortOrder = SortOrder.RELEVANCE
    page: int = 1
    size: int = 10
    hide_sold_out: bool = False
    """Only programs with tickets left (in the time window: a show time in it with tickets left)."""

    @property
    def offset(self) -> int:
        """Hits before this page."""
        return (self.page - 1) * self.size

    @property
    def too_deep(self) -> bool:
        """Whether this page reaches past ``RESULT_WINDOW``, which neither store answers."""
        return self.page * self.size > RESULT_WINDOW


@dataclass(frozen=True)
class SearchPage:
    total: int
    hits: list[ProgramHitOut]


def window_bounds(q: ProgramQuery, now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
    """[start, end) of the calendar window in the platform's time zone; None for no window."""
    today = now.astimezone(zone).date()
    days: tuple[date, date] | None
    match q.window:
        case TimeWindow.ALL:
            days = None
        case TimeWindow.TODAY:
            days = (today, today)
        case TimeWindow.TOMORROW:
            days = (today + timedelta(days=1), today + timedelta(days=1))
        case TimeWindow.WEEK:  # from today to this Sunday
            days = (today, today + timedelta(days=6 - today.weekday()))
        case TimeWindow.MONTH:  # from today to the last day of this month
            next_month = (today.replace(day=28) + timedelta(days=4)).replace(day=1)
            days = (today, next_month - timedelta(days=1))
        case TimeWindow.RANGE:
            assert q.start_date is not None and q.end_date is not None
            days = (q.start_date, q.end_date)
    if days is None:
        return None
    start = datetime.combine(days[0], time_of_day.min, tzinfo=zone)
    return start, datetime.combine(days[1] + timedelta(days=1), time_of_day.min, tzinfo=zone)


def search_body(q: ProgramQuery, now: datetime, zone: ZoneInfo) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [{"term": {"status": ProgramStatus.ON_SALE.value}}]
    for field, value in (
        ("areaId", q.area_id),
        ("parentCategoryId", q.parent_category_id),
        ("categoryId", q.category_id),
    ):
        if value is not None:
            filters.append({"term": {field: value}})
    bounds = window_bounds(q, now, zone)
    if bounds is not None:
        filters.append(_in_window(bounds, q.hide_sold_out))
    if q.hide_sold_out:
        filters.append({"bool": {"must_not": {"term": {"soldOut": True}}}})
    must: list[dict[str, Any]] = []
    if q.keyword:
        # Single-character tokens (standard analyzer on Chinese): phrase queries keep words whole.
        must.append(
            {
                "bool": {
                    "should": [{"match_phrase": {"title": q.keyword}}, {"match_phrase": {"actor": q.keyword}}],
                    "minimum_should_match": 1,
                }
            }
        )
    return {
        "query": {"bool": {"filter": filters, "must": must}},
        "sort": _sort(q.sort),
        "from": q.offset,
        "size": q.size,
        "track_total_hits": True,
        "highlight": {
            # The fields' text escaped, so the tags are the only markup (a title may hold HTML).
            "encoder": HIGHLIGHT_ENCODER,
            "pre_tags": [HIGHLIGHT_TAGS[0]],
            "post_tags": [HIGHLIGHT_TAGS[1]],
            "fields": {"title": {"number_of_fragments": 0}, "actor": {"number_of_fragments": 0}},
        },
    }


def _in_window(bounds: tuple[datetime, datetime], with_tickets: bool) -> dict[str, Any]:
    """A show time in [start, end); ``with_tickets``: one with tickets left. A document indexed
    before the sold-out state was (no ``soldOut``) is taken to have tickets at every show time."""
    window = {"gte": bounds[0].isoformat(), "lt": bounds[1].isoformat()}
    if not with_tickets:
        return {"range": {"showTimes": window}}
    unknown = {"bool": {"must_not": {"exists": {"field": "soldOut"}}, "filter": {"range": {"showTimes": window}}}}
    return {"bool": {"should": [{"range": {"availableShowTimes": window}}, unknown], "minimum_should_match": 1}}


def _sort(order: SortOrder) -> list[Any]:
    # The id breaks ties, so paging is stable whatever the primary order.
    tie = {"id": "asc"}
    match order:
        case SortOrder.RELEVANCE:
            return ["_score", {"firstShowAt": "asc"}, tie]
        case SortOrder.HEAT:
            return [{"highHeat": "desc"}, {"firstShowAt": "asc"}, tie]
        case SortOrder.SHOW_TIME:
            return [{"firstShowAt": "asc"}, tie]
        case SortOrder.ISSUE_TIME:
            return [{"issueTime": {"order": "desc", "missing": "_last"}}, tie]


async def search_programs(
    es: AsyncElasticsearch, index: str, q: ProgramQuery, now: datetime, zone: ZoneInfo
) -> SearchPage:
    body = search_body(q, now, zone)
    # The client's keyword API spells the wire's "from" as from_.
    response = await es.search(index=index, ignore_unavailable=True, from_=body.pop("from"), **body)
    hits = [
        hit_of_document(h["_source"], {k: v[0] for k, v in h.get("highlight", {}).items()})
        for h in response["hits"]["hits"]
    ]
    return SearchPage(int(response["hits"]["total"]["value"]), hits)


class ProgramSearch:
    """Search and home pages: Elasticsearch first, the same queries on Postgres when it cannot
    answer (full route, slower). After a failure Elasticsearch is left alone for
    ``retry_after_s`` (queries/breaker.py)."""

    def __init__(
        self,
        es: AsyncElasticsearch,
        index: str,
        db: ShardedDatabase,
        zone: ZoneInfo,
        retry_after_s: float,
        remaining: RemainingCounts | None = None,
    ):
        self._es = es
        self._index = index
        self._db = db
        self._remaining = remaining
        self.zone = zone
        self._breaker = Breaker("elasticsearch", retry_after_s)

    async def page(self, q: ProgramQuery, now: datetime) -> SearchPage:
        if self._breaker.allows():
            try:
                return await search_programs(self._es, self._index, q, now, self.zone)
            except SEARCH_ERRORS as exc:
                self._fell_over(exc)
        SEARCH_FALLBACKS.inc()
        return await _search_postgres(self._db, q, now, self.zone, self._remaining)

    async def first_per_category(
        self, area_id: int, parent_category_ids: list[int], per_category: int, now: datetime
    ) -> dict[int, list[ProgramHitOut]]:
        """The home page: for each top-level category, its first programs on sale in one area
        (one Elasticsearch round trip)."""
        queries = [
            ProgramQuery(area_id=area_id, parent_category_id=p, sort=SortOrder.SHOW_TIME, size=per_category)
            for p in parent_category_ids
        ]
        if not queries:
            return {}
        if self._breaker.allows():
            searches: list[dict[str, Any]] = []
            for query in queries:
                searches += [{"index": self._index, "ignore_unavailable": True}, search_body(query, now, self.zone)]
            try:
                response = await self._es.msearch(searches=searches)
                return {
                    parent_id: [hit_of_document(h["_source"], {}) for h in answer["hits"]["hits"]]
                    for parent_id, answer in zip(parent_category_ids, response["responses"], strict=True)
                }
            except SEARCH_ERRORS as exc:
                self._fell_over(exc)
        SEARCH_FALLBACKS.inc()
        pages = await asyncio.gather(*(_search_postgres(self._db, q, now, self.zone, self._remaining) for q in queries))
        return {p: page.hits for p, page in zip(parent_category_ids, pages, strict=True)}

    def _fell_over(self, exc: Exception) -> None:
        """Record an outage, or re-raise what is not one (a bad query is a bug, not an outage)."""
        if not search_unavailable(exc):
            raise exc
        self._breaker.trip(exc)


async def _search_postgres(
    db: ShardedDatabase, q: ProgramQuery, now: datetime, zone: ZoneInfo, remaining: RemainingCounts | None
) -> SearchPage:
    """The page from Postgres, each hit's sold-out state from the inventory's remaining counts (the
    detail page's live counts: Postgres has none). ``hide_sold_out`` drops the sold-out programs
    from the page found, so on the fallback a page may come short, ``total`` still counts them,
    and a program with tickets left at another show time than the window's is kept (docs/search.md)."""
    total, hits = await full_route_search_programs(
        db,
        keyword=q.keyword,
        area_id=q.area_id,
        parent_category_id=q.parent_category_id,
        category_id=q.category_id,
        window=window_bounds(q, now, zone),
        sort=q.sort.value,
        offset=q.offset,
        size=q.size,
    )
    if remaining is not None:
        counts = await asyncio.gather(*(remaining.get(int(hit.id)) for hit in hits))
        hits = [
            hit.model_copy(update={"sold_out": sold_out(c, sold_out_categories(c))}) if c else hit
            for hit, c in zip(hits, counts, strict=True)
        ]
    if q.hide_sold_out:
        hits = [hit for hit in hits if not hit.sold_out]
    return SearchPage(total, hits)
