"""One admin command through the whole shape: API → Kafka → Faust projector → Postgres → query."""

from __future__ import annotations

import asyncio

from tests.e2e.conftest import System
from tests.integration.test_kafka_adapter import read_all
from tests.processes import eventually

PROJECTED_S = 60


async def _area_visible(system: System, location: str) -> bool:
    return (await system.http.get(location)).status_code == 200


async def test_created_area_comes_back_through_the_query_api(system: System, area_code):
    body = {"areaId": area_code, "name": "苏州", "level": "city"}

    accepted = await system.http.post("/api/v1/admin/areas", json=body, headers=system.admin())

    assert accepted.status_code == 202, accepted.text
    location = accepted.headers["location"]
    assert location == f"/api/v1/areas/{area_code}"
    await eventually(lambda: _area_visible(system, location), PROJECTED_S, "the area to be projected")
    area = (await system.http.get(location)).json()
    assert area["id"] == area_code and area["name"] == "苏州" and area["level"] == "city"
    assert area["parentId"] is None
    listed = (await system.http.get("/api/v1/areas")).json()
    assert any(a["id"] == area_code for a in listed)


async def test_child_area_is_listed_under_its_parent(system: System, area_code):
    parent, child = area_code, area_code + 1
    await system.http.post(
        "/api/v1/admin/areas", json={"areaId": parent, "name": "浙江省", "level": "province"}, headers=system.admin()
    )
    await eventually(lambda: _area_visible(system, f"/api/v1/areas/{parent}"), PROJECTED_S, "the province")

    accepted = await system.http.post(
        "/api/v1/admin/areas",
        json={"areaId": child, "name": "宁波", "level": "city", "parentId": parent},
        headers=system.admin(),
    )
    await eventually(lambda: _area_visible(system, f"/api/v1/areas/{child}"), PROJECTED_S, "the city")

    assert accepted.status_code == 202
    children = (await system.http.get("/api/v1/areas", params={"parentId": parent})).json()
    assert [a["id"] for a in children] == [child]


async def test_creating_an_existing_area_is_a_conflict(system: System, area_code):
    body = {"areaId": area_code, "name": "成都", "level": "city"}
    await system.http.post("/api/v1/admin/areas", json=body, headers=system.admin())
    await eventually(lambda: _area_visible(system, f"/api/v1/areas/{area_code}"), PROJECTED_S, "the area")

    again = await system.http.post("/api/v1/admin/areas", json=body, headers=system.admin())

    assert again.status_code == 409
    assert again.json()["code"] == "AREA_EXISTS"


async def test_request_id_is_echoed_and_errors_use_the_envelope(system: System):
    response = await system.http.get("/api/v1/areas/999999", headers={"X-Request-ID": "trace-me-42"})

    assert response.status_code == 404
    assert response.headers["x-request-id"] == "trace-me-42"
    assert response.json() == {"code": "AREA_NOT_FOUND", "message": "no area 999999", "details": {"areaId": 999999}}


async def test_metrics_count_the_requests(system: System):
    await system.http.get("/healthz")

    metrics = (await system.http.get("/metrics")).text

    assert 'damai_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics


async def test_events_carry_the_callers_correlation_id(system: System, area_code):
    correlation = "0192f2a4-1c1e-7cc0-8a6b-3c1a2b3c4d5e"

    accepted = await system.http.post(
        "/api/v1/admin/areas",
        json={"areaId": area_code, "name": "西安", "level": "city"},
        headers={**system.admin(), "X-Correlation-ID": correlation},
    )

    assert accepted.status_code == 202
    records = await read_all(system.settings, system.settings.kafka.topic("reference"))
    mine = [r for r in records if r.key == f"area-{area_code}".encode()]
    assert len(mine) == 1
    assert dict(mine[0].headers)["correlation-id"] == correlation.encode()


async def test_the_second_of_two_simultaneous_creations_of_an_area_is_a_conflict(system: System, area_code):
    body = {"areaId": area_code, "name": "绍兴", "level": "city"}

    first, second = await asyncio.gather(
        system.http.post("/api/v1/admin/areas", json=body, headers=system.admin()),
        system.http.post("/api/v1/admin/areas", json=body, headers=system.admin()),
    )

    assert sorted([first.status_code, second.status_code]) == [202, 409]
    refused = first if first.status_code == 409 else second
    assert refused.json()["code"] == "AREA_EXISTS"
    records = await read_all(system.settings, system.settings.kafka.topic("reference"))
    assert len([r for r in records if r.key == f"area-{area_code}".encode()]) == 1
