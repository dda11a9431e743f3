"""Program search over HTTP against Elasticsearch, fed by the program projector."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest_asyncio

from queries.views import programs
from tests.e2e.conftest import AREA, CHILD, PARENT, System
from tests.processes import eventually

PROJECTED_S = 60
NOW = datetime.now(UTC)


def body(title: str, actor: str, days: int, high_heat: bool = False) -> dict[str, Any]:
    return {
        "title": title,
        "actor": actor,
        "venue": "杭州大剧院",
        "areaId": AREA,
        "parentCategoryId": PARENT,
        "categoryId": CHILD,
        "seatSelectable": False,
        "highHeat": high_heat,
        "showTimes": [
            {
                "startsAt": (NOW + timedelta(days=days, hours=2)).isoformat(),
                "ticketCategories": [
                    {"name": "普通票", "price": "280.00", "total": 100},
                    {"name": "VIP", "price": "880.00", "total": 20},
                ],
            }
        ],
    }


@pytest_asyncio.fixture(scope="module")
async def programs_on_sale(system: System, catalogue) -> AsyncIterator[dict[str, str]]:
    """Three programs on sale (and one draft), by title → id, searchable."""
    created: dict[str, str] = {}
    for title, actor, days, heat in [
        ("周杰伦 嘉年华演唱会", "周杰伦", 40, True),
        ("孙燕姿 就在日落以后", "孙燕姿", 10, False),
        ("话剧 茶馆", "北京人艺", 20, False),
    ]:
        accepted = await system.http.post(
            "/api/v1/admin/programs", json=body(title, actor, days, heat), headers=system.admin()
        )
        created[title] = accepted.json()["programId"]
    await system.http.post("/api/v1/admin/programs", json=body("草稿 不可见", "无名", 5), headers=system.admin())
    for program_id in created.values():
        await eventually(partial(_draft_exists, catalogue, int(program_id)), PROJECTED_S, "the draft")
        await system.http.post(f"/api/v1/admin/programs/{program_id}/publish", headers=system.admin())
    await eventually(lambda: _total(system, {}, 3), PROJECTED_S, "three programs in search")
    yield created


async def test_keyword_matches_title_or_actor_with_highlighting(system: System, programs_on_sale):
    response = await system.http.get("/api/v1/programs", params={"keyword": "孙燕姿"})

    page = response.json()
    assert page["total"] == 1
    [hit] = page["items"]
    assert hit["id"] == programs_on_sale["孙燕姿 就在日落以后"]
    assert "<em>" in hit["highlight"]["title"]
    assert (hit["minPrice"], hit["maxPrice"]) == ("280.00", "880.00")


async def test_sorts_order_the_whole_list_and_drafts_never_show(system: System, programs_on_sale):
    by_show_time = (await system.http.get("/api/v1/programs", params={"sort": "showTime"})).json()
    by_heat = (await system.http.get("/api/v1/programs", params={"sort": "heat"})).json()

    assert [i["title"] for i in by_show_time["items"]] == ["孙燕姿 就在日落以后", "话剧 茶馆", "周杰伦 嘉年华演唱会"]
    assert by_heat["items"][0]["title"] == "周杰伦 嘉年华演唱会"
    assert "草稿 不可见" not in {i["title"] for i in by_show_time["items"]}


async def test_paging_is_stable_and_carries_the_total(system: System, programs_on_sale):
    pages = [
        (await system.http.get("/api/v1/programs", params={"sort": "showTime", "size": 2, "page": p})).json()
        for p in (1, 2)
    ]

    assert [p["total"] for p in pages] == [3, 3]
    assert [len(p["items"]) for p in pages] == [2, 1]
    assert len({i["id"] for p in pages for i in p["items"]}) == 3


async def test_time_windows_and_filters_narrow_the_list(system: System, programs_on_sale):
    start = (NOW + timedelta(days=15)).date().isoformat()
    end = (NOW + timedelta(days=45)).date().isoformat()

    in_range = (
        await system.http.get("/api/v1/programs", params={"timeWindow": "range", "startDate": start, "endDate": end})
    ).json()
    other_area = (await system.http.get("/api/v1/programs", params={"areaId": 110000})).json()
    today = (await system.http.get("/api/v1/programs", params={"timeWindow": "today"})).json()

    assert {i["title"] for i in in_range["items"]} == {"话剧 茶馆", "周杰伦 嘉年华演唱会"}
    assert other_area["total"] == 0
    assert today["total"] == 0


async def test_bad_search_parameters_are_refused(system: System):
    answers = [
        await system.http.get("/api/v1/programs", params={"sort": "price"}),
        await system.http.get(
            "/api/v1/programs", params={"timeWindow": "range", "startDate": "2027-01-02", "endDate": "2027-01-01"}
        ),
        await system.http.get("/api/v1/programs", params={"size": 500}),
        await system.http.get("/api/v1/programs", params={"page": 0}),
    ]

    assert [(a.status_code, a.json()["code"]) for a in answers] == [
        (422, "VALIDATION_FAILED"),
        (422, "BAD_DATE_RANGE"),
        (422, "PAGE_SIZE_TOO_LARGE"),
        (422, "VALIDATION_FAILED"),
    ]


async def _draft_exists(catalogue, program_id: int) -> bool:
    return await programs.get_program(catalogue, program_id) is not None


async def _total(system: System, params: dict[str, Any], expected: int) -> bool:
    return bool((await system.http.get("/api/v1/programs", params=params)).json().get("total") == expected)


async def test_home_lists_each_top_level_categorys_first_programs_in_the_area(system: System, programs_on_sale):
    here = (await system.http.get("/api/v1/home", params={"areaId": AREA})).json()
    default_area = (await system.http.get("/api/v1/home")).json()

    [concerts] = [s for s in here if s["categoryId"] == PARENT]
    assert concerts["categoryName"] == "演唱会"
    assert [p["title"] for p in concerts["programs"]] == ["孙燕姿 就在日落以后", "话剧 茶馆", "周杰伦 嘉年华演唱会"]
    assert all(not s["programs"] for s in default_area)  # nothing on sale in the default area here


async def test_home_of_an_unknown_area_is_not_found(system: System, programs_on_sale):
    response = await system.http.get("/api/v1/home", params={"areaId": 999999})

    assert (response.status_code, response.json()["code"]) == (404, "AREA_NOT_FOUND")
