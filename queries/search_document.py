"""A program as a search document: what the list and search pages filter, sort and show, and the
search hit (``queries.shapes.ProgramHitOut``) a document answers with."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from queries.detail import ProgramDetail
from queries.shapes import ProgramHitOut, yuan


def sold_out_categories(remaining: Mapping[int, int]) -> frozenset[int]:
    """The ticket categories with no tickets left, by the seat inventory's remaining counts (the
    rule lua/search_availability.lua applies too)."""
    return frozenset(category for category, count in remaining.items() if count <= 0)


def sold_out(category_ids: Iterable[int], sold_out: frozenset[int]) -> bool:
    """Whether a show time (or a program) with these ticket categories is sold out: it has some,
    and none has a ticket left. A category the inventory does not know yet has its tickets."""
    ids = list(category_ids)
    return bool(ids) and all(c in sold_out for c in ids)


def program_search_document(detail: ProgramDetail, sold_out_ids: frozenset[int] = frozenset()) -> dict[str, Any]:
    """The document of a program whose ticket categories ``sold_out_ids`` have no tickets left."""
    starts = sorted(s.starts_at for s in detail.show_times)
    available = sorted(
        s.starts_at for s in detail.show_times if not sold_out((c.id for c in s.ticket_categories), sold_out_ids)
    )
    categories = [c.id for s in detail.show_times for c in s.ticket_categories]
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
        "soldOut": sold_out(categories, sold_out_ids),
        "availableShowTimes": [s.isoformat() for s in available],
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
        # A document indexed before the sold-out state was has none: it had tickets then.
        sold_out=document.get("soldOut", False),
        highlight=highlight,
    )
