"""Bad input on the skeleton's command: a clear 4xx and no event appended."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.e2e.conftest import System


async def _log_end(system: System) -> dict[int, int]:
    topic = system.settings.kafka.topic("reference")
    consumer = AIOKafkaConsumer(bootstrap_servers=system.settings.kafka.bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(system.settings.kafka.topics["reference"].partitions)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"areaId": None, "name": "苏州", "level": "city"}, 422, "VALIDATION_FAILED"),
        ({"areaId": 42, "name": "苏州", "level": "city"}, 422, "VALIDATION_FAILED"),
        ({"name": "苏州", "level": "galaxy"}, 422, "VALIDATION_FAILED"),
        ({"name": "苏州", "level": "city", "mayor": "x"}, 422, "VALIDATION_FAILED"),
        ({"name": "  ", "level": "city"}, 422, "AREA_NAME_BLANK"),
        ({"name": "吴中区", "level": "district"}, 422, "AREA_PARENT_REQUIRED"),
        ({"name": "吴中区", "level": "district", "parentId": 999998}, 422, "AREA_PARENT_UNKNOWN"),
    ],
)
async def test_invalid_area_is_refused_and_nothing_is_appended(system: System, body, status, code, area_code):
    before = await _log_end(system)

    response = await system.http.post("/api/v1/admin/areas", json={"areaId": area_code, **body}, headers=system.admin())

    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert set(response.json()) == {"code", "message", "details"}
    assert await _log_end(system) == before


async def test_malformed_json_is_a_bad_request(system: System):
    before = await _log_end(system)

    response = await system.http.post(
        "/api/v1/admin/areas", content=b"{not json", headers={**system.admin(), "Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "MALFORMED_BODY"
    assert await _log_end(system) == before


async def test_admin_route_without_credential_is_unauthenticated(system: System):
    before = await _log_end(system)

    response = await system.http.post("/api/v1/admin/areas", json={"areaId": 320500, "name": "苏州", "level": "city"})

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"
    assert await _log_end(system) == before


async def test_admin_route_with_a_wrong_credential_is_unauthenticated(system: System):
    response = await system.http.post(
        "/api/v1/admin/areas",
        json={"areaId": 320500, "name": "苏州", "level": "city"},
        headers={"Authorization": "Bearer not-the-admin"},
    )

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_bad_correlation_id_is_a_bad_request(system: System, area_code):
    before = await _log_end(system)

    response = await system.http.post(
        "/api/v1/admin/areas",
        json={"areaId": area_code, "name": "苏州", "level": "city"},
        headers={**system.admin(), "X-Correlation-ID": "not-a-uuid"},
    )

    assert response.status_code == 400
    assert response.json()["code"] == "BAD_CORRELATION_ID"
    assert await _log_end(system) == before


async def test_unknown_route_is_not_found_in_the_envelope(system: System):
    response = await system.http.get("/api/v1/nowhere")

    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


async def test_error_responses_leave_no_deprecation_warning_in_the_log(system: System):
    answers = [
        await system.http.get("/api/v1/nowhere"),
        await system.http.get("/api/v1/programs", params={"page": 0}),
        await system.http.post("/api/v1/admin/areas", json={"name": "苏州", "level": "city"}),
    ]

    assert [a.status_code for a in answers] == [404, 422, 401]
    assert "DeprecationWarning" not in system.api_log.read_text(errors="replace")
