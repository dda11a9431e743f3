"""FULL ROUTE: program search on Postgres, for when Elasticsearch is down — correct, slower.

Every program table is asked for its best ``offset + size`` matches (show times and prices come
from the tables of the same slot, in the same database), and the pages are merged here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aggregates.program import ProgramStatus
from infra.postgres.sharded import ShardedDatabase
from queries.shapes import HIGHLIGHT_TAGS, ProgramHitOut, escape_highlight, yuan

SEARCH_SQL = """
SELECT p.id, p.title, p.actor, p.venue, p.area_id, p.parent_category_id, p.category_id, p.high_heat, p.issue_time,
       (SELECT min(s.starts_at) FROM {show_time} s WHERE s.program_id = p.id) AS first_show_at,
       (SELECT min(t.price) FROM {ticket_category} t WHERE t.program_id = p.id) AS min_price,
       (SELECT max(t.price) FROM {ticket_category} t WHERE t.program_id = p.id) AS max_price,
       count(*) OVER () AS matches
FROM {program} p
WHERE p.status = '{on_sale}'
  AND ($1::int IS NULL OR p.area_id = $1)
  AND ($2::int IS NULL OR p.parent_category_id = $2)
  AND ($3::int IS NULL OR p.category_id = $3)
  AND ($4::text IS NULL OR strpos(p.title, $4) > 0 OR strpos(coalesce(p.actor, ''), $4) > 0)
  AND ($5::timestamptz IS NULL OR EXISTS (
        SELECT 1 FROM {show_time} s WHERE s.program_id = p.id AND s.starts_at >= $5 AND s.starts_at < $6))
ORDER BY {order}
LIMIT $7
"""
ORDERS = {
    "heat": (
        "p.high_heat DESC, first_show_at ASC, p.id ASC",
        lambda r: (not r["high_heat"], r["first_show_at"], r["id"]),
    ),
    "showTime": ("first_show_at ASC, p.id ASC", lambda r: (r["first_show_at"], r["id"])),
    "issueTime": (
        "p.issue_time DESC NULLS LAST, p.id ASC",
        lambda r: (r["issue_time"] is None, -(r["issue_time"].timestamp() if r["issue_time"] else 0), r["id"]),
    ),
}
# Without a text-relevance score, relevance falls back to the soonest show first.
ORDERS["relevance"] = ORDERS["showTime"]


async def full_route_search_programs(
    db: ShardedDatabase,
    *,
    keyword: str | None,
    area_id: int | None,
    parent_category_id: int | None,
    category_id: int | None,
    window: tuple[datetime, datetime] | None,
    sort: str,
    offset: int,
    size: int,
) -> tuple[int, list[ProgramHitOut]]:
    """(total matches, the page)."""
    order_sql, order_key = ORDERS[sort]
    total, candidates = 0, []
    for program in db.layout.physical_tables("program"):
        slot = int(program.table.rsplit("_", 1)[1])
        sql = SEARCH_SQL.format(
            program=program.table,
            show_time=db.layout.shard("show_time", slot).table,
            ticket_category=db.layout.shard("ticket_category", slot).table,
            order=order_sql,
            on_sale=ProgramStatus.ON_SALE.value,
        )
        rows = await db.pools[program.database].fetch(
            sql,
            area_id,
            parent_category_id,
            category_id,
            keyword,
            window[0] if window else None,
            window[1] if window else None,
            offset + size,
        )
        total += int(rows[0]["matches"]) if rows else 0
        candidates += rows
    page = sorted(candidates, key=order_key)[offset : offset + size]
    return total, [_hit(r, keyword) for r in page]


def _hit(r: Any, keyword: str | None) -> ProgramHitOut:
    return ProgramHitOut(
        id=str(r["id"]),
        title=r["title"],
        actor=r["actor"],
        venue=r["venue"],
        area_id=r["area_id"],
        parent_category_id=r["parent_category_id"],
        category_id=r["category_id"],
        first_show_at=r["first_show_at"],
        min_price=yuan(r["min_price"]),
        max_price=yuan(r["max_price"]),
        high_heat=r["high_heat"],
        # Postgres keeps no remaining counts: queries/search.py lays the inventory's over the page.
        sold_out=False,
        highlight=highlight_fields(r, keyword),
    )


def highlight_fields(r: Any, keyword: str | None) -> dict[str, str]:
    """What Elasticsearch's highlighter gives for the same keyword: each matched field whole
    (``number_of_fragments: 0``), escaped as its ``html`` encoder does, every occurrence wrapped
    in ``HIGHLIGHT_TAGS``."""
    if not keyword:
        return {}
    before, after = HIGHLIGHT_TAGS
    marked = f"{before}{escape_highlight(keyword)}{after}"
    # Split before escaping: the keyword is found in the text as stored, never inside an escape.
    return {
        field: marked.join(escape_highlight(part) for part in r[field].split(keyword))
        for field in ("title", "actor")
        if r[field] and keyword in r[field]
    }
