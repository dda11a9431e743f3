"""The edge's rules held to the routes they guard, and its middleware driven as plain ASGI."""

from __future__ import annotations

import orjson
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from prometheus_client import REGISTRY

from api.app import create_app
from api.auth import ADMIN_PATH_PREFIX, require_admin
from api.body_limit import BodyLimits, check_json
from api.edge import EdgeMiddleware
from api.errors import ApiError
from api.observability import RequestContextMiddleware
from infra.settings import ApiSettings, Settings
from tests.asgi_calls import asgi_call

PROGRAMS = "POST /api/v1/admin/programs"
STADIUM_SEATS = 50_000


def _routes() -> list[tuple[str, set[str], APIRoute]]:
    """(path, methods, route) of every route the API serves, through its included routers."""
    contexts = iter_route_contexts(create_app(Settings()).routes)
    return [
        (c.path or "", c.methods or set(), c.original_route) for c in contexts if isinstance(c.original_route, APIRoute)
    ]


def _depends_on(route: APIRoute, call: object) -> bool:
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        if dependant.call is call:
            return True
        pending.extend(dependant.dependencies)
    return False


def test_every_route_that_requires_the_admin_lies_where_the_edge_checks_the_credential():
    admin = [path for path, _, route in _routes() if _depends_on(route, require_admin)]

    assert admin
    assert [p for p in admin if not p.startswith(ADMIN_PATH_PREFIX)] == []


def test_every_body_limit_names_a_route_of_the_api():
    declared = {f"{method} {path}" for path, methods, _ in _routes() for method in methods}

    assert set(ApiSettings().body_limits) <= declared


def test_program_limit_takes_a_stadium_show_time_with_every_seat_listed_and_indented():
    seats = [{"row": 1 + n // 250, "column": 1 + n % 250, "price": "1280.00"} for n in range(STADIUM_SEATS)]
    categories = [{"name": f"看台{c:02d}", "price": "1280.00", "seats": seats[c::20]} for c in range(20)]
    program = {
        "title": "x" * 128,
        "venue": "国家体育场",
        "areaId": 110000,
        "parentCategoryId": 1,
        "categoryId": 101,
        "seatSelectable": True,
        "detail": "详" * 20_000,
        "showTimes": [{"startsAt": "2027-05-01T19:30:00+08:00", "ticketCategories": categories}],
    }

    indented = orjson.dumps(program, option=orjson.OPT_INDENT_2)

    assert len(indented) < ApiSettings().body_limits[PROGRAMS]


def test_a_route_template_has_its_own_limit_and_other_routes_the_default():
    limits = BodyLimits(100, {"PUT /api/v1/admin/programs/{program_id}/seats": 5000, PROGRAMS: 2000})

    assert limits.limit("PUT", "/api/v1/admin/programs/7/seats") == 5000
    assert limits.limit("POST", "/api/v1/admin/programs") == 2000
    assert limits.limit("POST", "/api/v1/admin/programs/7/seats") == 100
    assert limits.limit("PUT", "/api/v1/admin/programs/7/seats/1") == 100


def test_limits_are_named_by_method_and_path():
    with pytest.raises(ValueError, match="METHOD /path"):
        ApiSettings(body_limits={"/api/v1/admin/programs": 10})


@pytest.mark.parametrize(
    "content_type", [b"application/json", b"Application/JSON; charset=utf-8", b"application/merge-patch+json"]
)
def test_json_bodies_are_accepted(content_type: bytes):
    check_json(content_type)


@pytest.mark.parametrize("content_type", [None, b"", b"text/plain", b"text/json", b"multipart/form-data; boundary=x"])
def test_other_bodies_are_unsupported(content_type: bytes | None):
    with pytest.raises(ApiError) as refused:
        check_json(content_type)

    assert refused.value.status == 415


async def test_head_is_counted_under_the_route_it_matched():
    routed = FastAPI()

    @routed.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    app = RequestContextMiddleware(EdgeMiddleware(routed, ApiSettings()), access_log=None)
    labels = {"method": "HEAD", "route": "/things/{thing_id}", "status": "200"}
    before = REGISTRY.get_sample_value("damai_http_requests_total", labels) or 0.0

    sent = await asgi_call(app, "HEAD", "/things/7")

    assert sent[0]["status"] == 200
    assert REGISTRY.get_sample_value("damai_http_requests_total", labels) == before + 1
