"""Elasticsearch: the async client and the index templates applied at start.

Documents are written with external versioning (the aggregate version), so a
redelivered or replayed event never overwrites newer state.
"""

from __future__ import annotations

from typing import Any

import structlog
from elasticsearch import ApiError as SearchApiError
from elasticsearch import AsyncElasticsearch
from elasticsearch import ConnectionError as SearchConnectionError
from elasticsearch import ConnectionTimeout as SearchTimeout
from elasticsearch.helpers import async_bulk

from infra.settings import ElasticsearchSettings

log = structlog.get_logger(__name__)

VERSION_CONFLICT = 409
TOO_MANY_REQUESTS = 429
SERVER_ERROR = 500
SINGLE_NODE_SETTINGS = {"number_of_shards": 1, "number_of_replicas": 0}


def index_name(settings: ElasticsearchSettings, family: str) -> str:
    return f"{settings.index_prefix}{family}"


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
    """Put every template (an upsert, so safe at every start), and bring indices that already exist
    up to their template's mapping. Mappings here are strict, so a field a new release writes would
    otherwise be refused by an index created before it. Elasticsearch accepts new fields in place;
    a changed type is refused (that needs a new index, rebuilt by replay)."""
    for name, body in index_templates(settings).items():
        await es.indices.put_index_template(name=name, **body)
        existing = await es.indices.get(index=body["index_patterns"], expand_wildcards="all", allow_no_indices=True)
        if existing:
            await es.indices.put_mapping(index=",".join(existing), **body["template"]["mappings"])
    log.info("elasticsearch.templates_applied", templates=list(index_templates(settings)))


class SearchBusy(Exception):
    """Elasticsearch turned bulk writes away for now (429 rejected, 5xx): retry, do not drop them."""


# Every error the client raises for a request; search_unavailable() tells an outage from a bug.
SEARCH_ERRORS: tuple[type[Exception], ...] = (SearchConnectionError, SearchTimeout, SearchApiError, SearchBusy)


def _busy(status: int) -> bool:
    return status == TOO_MANY_REQUESTS or status >= SERVER_ERROR


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
    statuses = [int(o.get("status", 0)) for o in outcomes]
    real = [(e, status) for e, status in zip(errors, statuses, strict=True) if status != VERSION_CONFLICT]
    if real and all(_busy(status) for _, status in real):
        raise SearchBusy(f"search indexing turned away: {[e for e, _ in real[:3]]}")
    if real:
        raise RuntimeError(f"search indexing failed: {[e for e, _ in real[:3]]}")
    return {str(o["_id"]) for o in outcomes}


async def document_versions(es: AsyncElasticsearch, index: str, ids: list[str]) -> dict[str, int]:
    """The external version of each of these documents that exists."""
    if not ids:
        return {}
    found = await es.mget(index=index, ids=ids, source=False)
    return {str(d["_id"]): int(d["_version"]) for d in found["docs"] if d.get("found")}
