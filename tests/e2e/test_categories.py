"""Categories through the whole shape: admin command → Kafka → projector → Postgres → query API."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2e.conftest import System
from tests.processes import eventually

PROJECTED_S = 60


async def _tree(system: System) -> list[dict[str, Any]]:
    response = await system.http.get("/api/v1/categories")
    assert response.status_code == 200
    return list(response.json())


async def test_child_category_is_listed_under_its_parent(system: System):
    admin = system.admin()
    await system.http.post(
        "/api/v1/admin/categories", json={"categoryId": 4, "name": "体育", "sortOrder": 4}, headers=admin
    )
    await eventually(lambda: _has(system, 4), PROJECTED_S, "the parent category")

    accepted = await system.http.post(
        "/api/v1/admin/categories", json={"categoryId": 401, "name": "足球", "parentId": 4}, headers=admin
    )
    await eventually(lambda: _has_child(system, 4, 401), PROJECTED_S, "the child category")

    assert accepted.status_code == 202
    [sport] = [c for c in await _tree(system) if c["id"] == 4]
    assert sport == {
        "id": 4,
        "name": "体育",
        "sortOrder": 4,
        "children": [{"id": 401, "name": "足球", "sortOrder": 0, "children": []}],
    }


async def test_child_of_a_child_is_refused(system: System):
    admin = system.admin()
    await system.http.post("/api/v1/admin/categories", json={"categoryId": 2, "name": "话剧歌剧"}, headers=admin)
    await eventually(lambda: _has(system, 2), PROJECTED_S, "the parent category")
    await system.http.post(
        "/api/v1/admin/categories", json={"categoryId": 201, "name": "话剧", "parentId": 2}, headers=admin
    )
    await eventually(lambda: _has_child(system, 2, 201), PROJECTED_S, "the child category")

    response = await system.http.post(
        "/api/v1/admin/categories", json={"categoryId": 2011, "name": "小剧场", "parentId": 201}, headers=admin
    )

    assert response.status_code == 422
    assert response.json()["code"] == "CATEGORY_PARENT_NOT_TOP_LEVEL"


async def test_category_commands_need_the_admin_credential(system: System):
    response = await system.http.post("/api/v1/admin/categories", json={"categoryId": 3, "name": "音乐会"})

    assert response.status_code == 401


async def _has(system: System, category_id: int) -> bool:
    return any(c["id"] == category_id for c in await _tree(system))


async def _has_child(system: System, parent_id: int, child_id: int) -> bool:
    return any(c["id"] == parent_id and any(k["id"] == child_id for k in c["children"]) for c in await _tree(system))


async def test_the_second_of_two_simultaneous_creations_of_a_category_is_a_conflict(system: System):
    body = {"categoryId": 7, "name": "亲子"}

    first, second = await asyncio.gather(
        system.http.post("/api/v1/admin/categories", json=body, headers=system.admin()),
        system.http.post("/api/v1/admin/categories", json=body, headers=system.admin()),
    )

    assert sorted([first.status_code, second.status_code]) == [202, 409]
    refused = first if first.status_code == 409 else second
    assert refused.json()["code"] == "CATEGORY_EXISTS"


async def test_a_child_category_is_accepted_right_after_its_parent_with_no_wait(system: System):
    admin = system.admin()

    parent = await system.http.post("/api/v1/admin/categories", json={"categoryId": 8, "name": "展览"}, headers=admin)
    child = await system.http.post(
        "/api/v1/admin/categories", json={"categoryId": 801, "name": "艺术展", "parentId": 8}, headers=admin
    )

    assert (parent.status_code, child.status_code) == (202, 202)
    await eventually(lambda: _has_child(system, 8, 801), PROJECTED_S, "the child category")
