"""Elasticsearch: the async client, the index templates applied at start, and the live names.

Documents are written with external versioning (the aggregate version), so a
redelivered or replayed event never overwrites newer state.

Writers and readers use an index's *live name* (``index_name``). Provisioning makes it an alias of
a concrete index named after it and the UTC time it was made (``<live name>-<time>``), so that
``damai rebuild search`` can fill another one beside it and move the name in one atomic step
(projections/rebuild_search.py). A deployment from before aliases has a concrete index of the live
name itself: provisioning leaves it, and its first rebuild replaces it by an alias.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from elasticsearch import ApiError as SearchApiError
from elasticsearch import AsyncElasticsearch, NotFoundError
from elasticsearch import ConnectionError as SearchConnectionError
from elasticsearch import ConnectionTimeout as SearchTimeout
from elasticsearch.helpers import async_bulk

from infra.settings import ElasticsearchSettings

log = structlog.get_logger(__name__)

FORBIDDEN = 403
VERSION_CONFLICT = 409
TOO_MANY_REQUESTS = 429
SERVER_ERROR = 500
SINGLE_NODE_SETTINGS = {"number_of_shards": 1, "number_of_replicas": 0}
SCAN_KEEP_ALIVE = "1m"
"""How long a point in time lasts between two pages of a scan."""


def index_name(settings: ElasticsearchSettings, family: str) -> str:
    """The live name of a family's index: an alias, or a concrete index from before aliases."""
    return f"{settings.index_prefix}{family}"


def concrete_index_name(live: str, made_at: datetime) -> str:
    """A concrete index behind ``live``: the template's pattern (``<live>*``) gives it its mapping,
    and the names sort by age."""
    return f"{live}-{made_at.astimezone(UTC):%Y%m%d-%H%M%S-%f}"


def index_templates(settings: ElasticsearchSettings) -> dict[str, dict[str, Any]]:
    """Every index template, by template name."""
    return {
        index_name(settings, "program"): {
            "index_patterns": [f"{index_name(settings, 'program')}*"],
            "template": {
                "settings": SINGLE_NODE_SETTINGS,
                "mappings": {
                    "dynamic": "strict",
                    "properties": {
                        "id": {"type": "keyword"},
                        # The standard analyzer splits Chinese into single characters (no cjk
                        # analyzer in this distribution, ADR 0002): phrase matching keeps them together.
                        "title": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
                        "actor": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
                        "venue": {"type": "text"},
                        "areaId": {"type": "integer"},
                        "parentCategoryId": {"type": "integer"},
                        "categoryId": {"type": "integer"},
                        "status": {"type": "keyword"},
                        "highHeat": {"type": "boolean"},
                        "issueTime": {"type": "date"},
                        "showTimes": {"type": "date"},
                        "firstShowAt": {"type": "date"},
                        "minPrice": {"type": "double"},
                        "maxPrice": {"type": "double"},
                        # Sold-out state, from the seat inventory's remaining counts
                        # (projections/search_index.py): whether every ticket category is sold
                        # out, and the show times that still have tickets.
                        "soldOut": {"type": "boolean"},
                        "availableShowTimes": {"type": "date"},
                    },
                },
            },
        },
    }


def create_elasticsearch(settings: ElasticsearchSettings) -> AsyncElasticsearch:
    return AsyncElasticsearch(
        settings.url,
        request_timeout=settings.request_timeout_s,
        max_retries=1,
        retry_on_timeout=False,
    )


async def apply_index_templates(es: AsyncElasticsearch, settings: ElasticsearchSettings) -> None:
    """Put every template (an upsert, so safe at every start), bring indices that already exist
    up to their template's mapping, and give each live name with nothing behind it an index. Mappings
    here are strict, so a field a new release writes would otherwise be refused by an index created
    before it. Elasticsearch accepts new fields in place; a changed type is refused (that needs a
    new index: ``damai rebuild search``)."""
    for name, body in index_templates(settings).items():
        await es.indices.put_index_template(name=name, **body)
        existing = await es.indices.get(index=body["index_patterns"], expand_wildcards="all", allow_no_indices=True)
        if existing:
            await es.indices.put_mapping(index=",".join(existing), **body["template"]["mappings"])
        await _give_live_name(es, name)
    log.info("elasticsearch.templates_applied", templates=list(index_templates(settings)))


async def _give_live_name(es: AsyncElasticsearch, live: str) -> None:
    """A live name with nothing behind it becomes the alias of a new concrete index. A concrete index
    of the live name itself is left as it is (its first rebuild turns the name into an alias)."""
    if await es.indices.exists(index=live):
        return
    try:
        await es.indices.create(
            index=concrete_index_name(live, datetime.now(UTC)), aliases={live: {"is_write_index": True}}
        )
    except SearchApiError:
        # Another process provisioning at the same moment won (Elasticsearch refuses an alias a
        # second write index), or a document written meanwhile created an index of the name.
        if not await es.indices.exists(index=live):
            raise
    else:
        log.info("elasticsearch.live_name_created", alias=live)


@dataclass(frozen=True)
class LiveIndex:
    """The concrete index a live name reads and writes."""

    name: str
    aliased: bool
    """False: an index of the live name itself, from before live names were aliases."""


async def live_index(es: AsyncElasticsearch, live: str) -> LiveIndex | None:
    """What ``live`` stands for now; None when nothing has that name."""
    try:
        found = await es.indices.get_alias(name=live)
    except NotFoundError:
        return LiveIndex(live, aliased=False) if await es.indices.exists(index=live) else None
    if len(found) != 1:
        raise RuntimeError(f"the live name {live} is an alias of {sorted(found)}: one index expected")
    return LiveIndex(next(iter(found)), aliased=True)


async def move_live_name(es: AsyncElasticsearch, live: str, old: LiveIndex | None, new: str) -> None:
    """Point ``live`` at ``new`` in one atomic ``_aliases`` call: away from the index it pointed at
    (refused if it no longer does: another rebuild moved it), or in place of an index of the live
    name itself, which the same call deletes (the name must be free to become an alias)."""
    actions: list[dict[str, Any]] = []
    if old is not None and old.aliased:
        actions.append({"remove": {"index": old.name, "alias": live, "must_exist": True}})
    elif old is not None:
        actions.append({"remove_index": {"index": old.name}})
    actions.append({"add": {"index": new, "alias": live, "is_write_index": True}})
    await es.indices.update_aliases(actions=actions)


async def freeze_writes(es: AsyncElasticsearch, index: str) -> None:
    """Refuse every write to ``index`` from now on; Elasticsearch answers once the writes in flight
    have finished. A writer refused retries (``bulk_index_versioned``): through the live name, once
    it points elsewhere."""
    await es.indices.add_block(index=index, block="write")


async def thaw_writes(es: AsyncElasticsearch, index: str) -> None:
    """Let ``index`` take writes again (undoes ``freeze_writes``)."""
    await es.indices.put_settings(index=index, settings={"index.blocks.write": False})


async def scan_documents(
    es: AsyncElasticsearch, index: str, *, page_size: int, source: bool
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every document of ``index`` as of one point in time, a page of hits at a time, each with its
    ``_id`` and ``_version`` (and ``_source`` when asked)."""
    pit_id = (await es.open_point_in_time(index=index, keep_alive=SCAN_KEEP_ALIVE))["id"]
    after: list[Any] | None = None
    try:
        while True:
            page = await es.search(
                pit={"id": pit_id, "keep_alive": SCAN_KEEP_ALIVE},
                sort=["_shard_doc"],
                size=page_size,
                source=source,
                version=True,
                search_after=after,
                track_total_hits=False,
            )
            pit_id = page["pit_id"]
            hits: list[dict[str, Any]] = page["hits"]["hits"]
            if not hits:
                return
            yield hits
            after = hits[-1]["sort"]
    finally:
        await es.close_point_in_time(id=pit_id)


class SearchBusy(Exception):
    """Elasticsearch turned bulk writes away for now (429 rejected, 5xx, an index frozen for writes
    while a rebuild moves its live name): retry, do not drop them."""


# Every error the client raises for a request; search_unavailable() tells an outage from a bug.
SEARCH_ERRORS: tuple[type[Exception], ...] = (SearchConnectionError, SearchTimeout, SearchApiError, SearchBusy)


def _busy(status: int) -> bool:
    return status == TOO_MANY_REQUESTS or status >= SERVER_ERROR


def _turned_away(outcome: dict[str, Any]) -> bool:
    """A bulk item Elasticsearch will take later: it was busy, or the index is blocked for writes."""
    status = int(outcome.get("status", 0))
    blocked = status == FORBIDDEN and outcome.get("error", {}).get("type") == "cluster_block_exception"
    return _busy(status) or blocked


def search_unavailable(exc: BaseException) -> bool:
    """Elasticsearch cannot answer now, and will later: unreachable, too slow, or a 5xx / 429 of
    its own (a new index whose shards are not allocated yet answers 503). Other errors are bugs
    or bad data."""
    if isinstance(exc, SearchConnectionError | SearchTimeout | SearchBusy):
        return True
    return isinstance(exc, SearchApiError) and _busy(exc.meta.status)


async def bulk_index_versioned(es: AsyncElasticsearch, actions: list[dict[str, Any]]) -> set[str]:
    """Bulk-write externally versioned documents; a version conflict means a newer document is
    already there (a redelivery or replay), which is success: the ids of those documents are
    returned, for a caller that must know. Anything else raises."""
    if not actions:
        return set()
    _, errors = await async_bulk(es, actions, raise_on_error=False, raise_on_exception=True)
    assert isinstance(errors, list)  # with raise_on_error=False the errors come back as a list
    outcomes = [next(iter(e.values())) for e in errors]
    real = [o for o in outcomes if int(o.get("status", 0)) != VERSION_CONFLICT]
    if real and all(_turned_away(o) for o in real):
        raise SearchBusy(f"search indexing turned away: {real[:3]}")
    if real:
        raise RuntimeError(f"search indexing failed: {real[:3]}")
    return {str(o["_id"]) for o in outcomes}


async def document_versions(es: AsyncElasticsearch, index: str, ids: list[str]) -> dict[str, int]:
    """The external version of each of these documents that exists."""
    if not ids:
        return {}
    found = await es.mget(index=index, ids=ids, source=False)
    return {str(d["_id"]): int(d["_version"]) for d in found["docs"] if d.get("found")}
