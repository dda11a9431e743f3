"""Request bodies at the edge: refused before they are read when the credential or the size is
wrong, counted while they arrive, JSON only, and not waited for forever."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from tests.e2e.conftest import System
from tests.e2e.raw_http import Connection, request_head

BODY_TIMEOUT_S = 1.0
# Well under any limit, and well under how long the API would wait for the body it announces.
PROMPTLY_S = 3.0
PROGRAMS = "POST /api/v1/admin/programs"
AREA = {"areaId": 320500, "name": "苏州", "level": "city"}


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return {"DAMAI_API__BODY_TIMEOUT_S": str(BODY_TIMEOUT_S)}


def _json_head(system: System, path: str, length: int, admin: bool = True) -> bytes:
    headers = {"Content-Type": "application/json", "Content-Length": str(length)}
    return request_head("POST", path, {**(system.admin() if admin else {}), **headers})


async def test_credential_is_checked_before_the_body_arrives(system: System):
    connection = await Connection.open(system.base_url)
    try:
        await connection.send(_json_head(system, "/api/v1/admin/areas", 1000, admin=False))

        answer = await connection.answer(PROMPTLY_S)
    finally:
        await connection.close()

    assert answer.status == 401
    assert orjson.loads(answer.body)["code"] == "UNAUTHENTICATED"


async def test_body_declared_over_the_limit_is_refused_before_it_arrives_and_the_connection_closed(system: System):
    connection = await Connection.open(system.base_url)
    try:
        await connection.send(_json_head(system, "/api/v1/admin/programs", 10 * 1024**3))

        answer = await connection.answer(PROMPTLY_S)
        closed = await connection.closed_by_server()
    finally:
        await connection.close()

    assert answer.status == 413
    assert orjson.loads(answer.body)["code"] == "PAYLOAD_TOO_LARGE"
    assert orjson.loads(answer.body)["details"] == {"limit": system.settings.api.body_limits[PROGRAMS]}
    assert closed


async def test_chunked_body_is_refused_once_it_passes_the_limit(system: System):
    limit = system.settings.api.body_limit_bytes

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"areaId": 320500, "level": "city", "name": "'
        for _ in range(2 * limit // 1024):
            yield b"x" * 1024
        yield b'"}'

    response = await system.http.post(
        "/api/v1/admin/areas", content=chunks(), headers={**system.admin(), "Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


async def test_program_route_takes_bodies_over_the_default_limit(system: System):
    too_long_for_a_title = "x" * (2 * system.settings.api.body_limit_bytes)

    response = await system.http.post(
        "/api/v1/admin/programs", json={"title": too_long_for_a_title}, headers=system.admin()
    )

    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_FAILED"


async def test_other_admin_routes_refuse_bodies_over_the_default_limit(system: System):
    name = "x" * (system.settings.api.body_limit_bytes + 1)

    response = await system.http.post("/api/v1/admin/areas", json={**AREA, "name": name}, headers=system.admin())

    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


async def test_slow_body_is_answered_408_and_its_connection_closed(system: System):
    connection = await Connection.open(system.base_url)
    try:
        await connection.send(_json_head(system, "/api/v1/admin/areas", 100) + b'{"areaId": ')

        answer = await connection.answer(BODY_TIMEOUT_S + PROMPTLY_S)
        closed = await connection.closed_by_server()
    finally:
        await connection.close()

    assert answer.status == 408
    assert orjson.loads(answer.body)["code"] == "REQUEST_TIMEOUT"
    assert closed


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_body_that_is_not_json_is_an_unsupported_media_type(system: System, content_type: str | None):
    headers = system.admin() | ({"Content-Type": content_type} if content_type else {})

    response = await system.http.post("/api/v1/admin/areas", content=orjson.dumps(AREA), headers=headers)

    assert response.status_code == 415
    assert response.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert set(response.json()) == {"code", "message", "details"}


async def test_refusal_of_a_small_declared_body_keeps_the_connection(system: System):
    body = orjson.dumps(AREA)
    connection = await Connection.open(system.base_url)
    try:
        await connection.send(_json_head(system, "/api/v1/admin/areas", len(body), admin=False) + body)
        refused = await connection.answer(PROMPTLY_S)
        await connection.send(request_head("GET", "/healthz"))
        after = await connection.answer(PROMPTLY_S)
    finally:
        await connection.close()

    assert refused.status == 401
    assert after.status == 200
