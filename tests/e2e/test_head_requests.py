"""HEAD on the routes that answer GET: the same status and headers, no body."""

from __future__ import annotations

from tests.e2e.conftest import System


async def test_head_answers_like_get_without_a_body(system: System):
    got = await system.http.get("/api/v1/categories")

    head = await system.http.head("/api/v1/categories")

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    assert head.headers["content-type"] == got.headers["content-type"]


async def test_head_of_an_unknown_program_is_not_found(system: System):
    response = await system.http.head("/api/v1/programs/1")

    assert response.status_code == 404
    assert response.content == b""


async def test_head_on_an_admin_route_needs_the_credential(system: System):
    response = await system.http.head("/api/v1/admin/programs")

    assert response.status_code == 401
