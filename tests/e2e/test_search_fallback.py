"""With Elasticsearch stopped, search answers from Postgres, and /readyz says search is down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import pytest_asyncio

from infra import stack
from queries.views import programs
from tests.e2e.conftest import AREA, CHILD, PARENT, System
from tests.processes import eventually

pytestmark = pytest.mark.slow
PROJECTED_S = 60
NOW = datetime.now(UTC)
SHOWS = [("五月天 诺亚方舟", "五月天", 12), ("五月天 人生无限公司", "五月天", 30), ("莫文蔚 绝色", "莫文蔚", 20)]


def body(title: str, actor: str, days: int) -> dict[str, Any]:
    return {
        "title": title,
        "actor": actor,
        "venue": "杭州体育馆",
        "areaId": AREA,
        "parentCategoryId": PARENT,
        "categoryId": CHILD,
        "seatSelectable": False,
        "showTimes": [
            {
                "startsAt": (NOW + timedelta(days=days)).isoformat(),
                "ticketCategories": [{"name": "看台", "price": "399.00", "total": 50}],
            }
        ],
    }


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    """No page cache: every request below must really ask Elasticsearch, or Postgres."""
    return {"DAMAI_API__SEARCH_CACHE_TTL_S": "0"}


@pytest_asyncio.fixture(scope="module")
async def on_sale(system: System, catalogue) -> AsyncIterator[None]:
    for title, actor, days in SHOWS:
        accepted = await system.http.post(
            "/api/v1/admin/programs", json=body(title, actor, days), headers=system.admin()
        )
        program_id = int(accepted.json()["programId"])
        await eventually(partial(_exists, catalogue, program_id), PROJECTED_S, "the draft")
        await system.http.post(f"/api/v1/admin/programs/{program_id}/publish", headers=system.admin())

    async def searchable() -> bool:
        return bool((await system.http.get("/api/v1/programs")).json()["total"] == len(SHOWS))

    await eventually(searchable, PROJECTED_S, "the programs in search")
    yield


async def test_search_answers_the_same_from_postgres_when_elasticsearch_is_down(system: System, on_sale):
    queries: list[dict[str, Any]] = [
        {"sort": "showTime"},
        {"keyword": "五月天", "sort": "showTime"},
        {"sort": "showTime", "size": 2, "page": 2},
    ]
    from_search = [(await system.http.get("/api/v1/programs", params=q)).json() for q in queries]
    home = (await system.http.get("/api/v1/home", params={"areaId": AREA})).json()

    await asyncio.to_thread(stack.down, system.settings, ["elasticsearch"])
    try:
        fallbacks_before = await _fallbacks(system)
        from_postgres = [(await system.http.get("/api/v1/programs", params=q)).json() for q in queries]
        home_from_postgres = (await system.http.get("/api/v1/home", params={"areaId": AREA})).json()
        ready = await system.http.get("/readyz")
        fallbacks = await _fallbacks(system) - fallbacks_before
    finally:
        await asyncio.to_thread(stack.up, system.settings, ["elasticsearch"])

    assert ready.status_code == 503 and "elasticsearch" in ready.json()["details"]["down"]
    assert fallbacks == len(queries) + 1  # every page above came from Postgres
    for es_page, pg_page in zip(from_search, from_postgres, strict=True):
        assert pg_page["total"] == es_page["total"]
        assert [i["id"] for i in pg_page["items"]] == [i["id"] for i in es_page["items"]]
        assert [(i["minPrice"], i["firstShowAt"] is not None) for i in pg_page["items"]] == [
            (i["minPrice"], True) for i in es_page["items"]
        ]
    assert all("<em>五月天</em>" in i["highlight"]["actor"] for i in from_postgres[1]["items"])
    assert [[p["id"] for p in s["programs"]] for s in home_from_postgres] == [
        [p["id"] for p in s["programs"]] for s in home
    ]
    assert sum(len(s["programs"]) for s in home) == len(SHOWS)


async def _exists(catalogue, program_id: int) -> bool:
    return await programs.get_program(catalogue, program_id) is not None


async def _fallbacks(system: System) -> float:
    metrics = (await system.http.get("/metrics")).text
    return sum(
        float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("damai_search_fallbacks_total")
    )
