"""A program as a search document: what the list and search pages filter, sort and show, and the
search hit (``queries.shapes.ProgramHitOut``) a document answers with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from queries.detail import ProgramDetail
from queries.shapes import ProgramHitOut, yuan


def program_search_document(detail: ProgramDetail) -> dict[str, Any]:
    starts = sorted(s.starts_at for s in detail.show_times)
    prices = [c.price for s in detail.show_times for c in s.ticket_categories]
    return {
        "id": str(detail.id),
        "title": detail.title,
        "actor": detail.actor,
        "venue": detail.venue,
        "areaId": detail.area_id,
        "parentCategoryId": detail.parent_category_id,
        "categoryId": detail.category_id,
        "status": detail.status,
        "highHeat": detail.high_heat,
        "issueTime": detail.issue_time.isoformat() if detail.issue_time else None,
        "showTimes": [s.isoformat() for s in starts],
        "firstShowAt": starts[0].isoformat() if starts else None,
        "minPrice": float(min(prices)) if prices else None,
        "maxPrice": float(max(prices)) if prices else None,
    }


def hit_of_document(document: Mapping[str, Any], highlight: dict[str, str]) -> ProgramHitOut:
    """The hit for a document Elasticsearch found, with the fields it highlighted."""
    return ProgramHitOut(
        id=document["id"],
        title=document["title"],
        actor=document["actor"],
        venue=document["venue"],
        area_id=document["areaId"],
        parent_category_id=document["parentCategoryId"],
        category_id=document["categoryId"],
        first_show_at=document["firstShowAt"],
        min_price=yuan(document["minPrice"]),
        max_price=yuan(document["maxPrice"]),
        high_heat=document["highHeat"],
        highlight=highlight,
    )
