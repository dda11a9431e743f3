"""Elasticsearch: the async client and the index templates applied at start.

Documents are written with external versioning (the aggregate version), so a
redelivered or replayed event never overwrites newer state.
"""

from __future__ import annotations

from typing import Any

import structlog
from elasticsearch import AsyncElasticsearch

from infra.settings import ElasticsearchSettings

log = structlog.get_logger(__name__)

SINGLE_NODE_SETTINGS = {"number_of_shards": 1, "number_of_replicas": 0}


def index_name(settings: ElasticsearchSettings, family: str) -> str:
    return f"{settings.index_prefix}{family}"


def index_templates(settings: ElasticsearchSettings) -> dict[str, dict[str, Any]]:
    """Every index template, by template name."""
    return {
        index_name(settings, "area"): {
            "index_patterns": [f"{index_name(settings, 'area')}*"],
            "template": {
                "settings": SINGLE_NODE_SETTINGS,
                "mappings": {
                    "dynamic": "strict",
                    "properties": {
                        "id": {"type": "integer"},
                        "name": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
                        "level": {"type": "keyword"},
                        "parentId": {"type": "integer"},
                        "createdAt": {"type": "date"},
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
    """Put every template (an upsert, so safe at every start)."""
    for name, body in index_templates(settings).items():
        await es.indices.put_index_template(name=name, **body)
    log.info("elasticsearch.templates_applied", templates=list(index_templates(settings)))
