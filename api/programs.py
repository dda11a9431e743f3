"""Program queries: the detail page of one program, served through the program detail cache, and its seat
map, whole or split into a layout and live states."""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response

from api.errors import ApiError, dependency_unavailable
from api.models import IdPath
from api.resources import Resources, ResourcesDep, resources_of
from events.program import EntityId
from infra.postgres.pools import UNREACHABLE_ERRORS
from infra.redis import REDIS_ERRORS
from queries.cache import CachedDetail
from queries.detail import ProgramDetail, ShowTimeDetail
from queries.seat_map import SeatLayoutOut, SeatStatesOut, encode_seat_map, seat_map
from queries.shapes import ProgramDetailOut, SeatMapOut

router = APIRouter(tags=["programs"])
T = TypeVar("T")


@router.get(
    "/api/v1/programs/{program_id}",
    response_model=ProgramDetailOut,
    responses={404: {"description": "No such program (or not published yet): PROGRAM_NOT_FOUND"}},
)
async def get_program_detail(
    program_id: IdPath,
    request: Request,
) -> Response:
    """One program with its show times and ticket categories: prices, and remaining counts from the
    seat inventory (at most ``remaining_ttl_s`` old)."""
    res = resources_of(request)
    cached = await _visible_program(res, program_id)
    # The cached document is the response body already, with the live remaining counts laid
    # over it (made once per change of the counts, not per request).
    return Response(cached.with_remaining(await res.reads.remaining.get(program_id)), media_type="application/json")


async def _visible_program(res: Resources, program_id: int) -> CachedDetail:
    """The cached detail of a published program; 404 for an unknown or draft one, 503 if unreadable."""
    try:
        cached = await res.reads.program_details.get(program_id)
    except UNREACHABLE_ERRORS as exc:
        raise dependency_unavailable(
            "CATALOGUE_UNAVAILABLE", "the program catalogue cannot be read now; retry", exc
        ) from exc
    if cached is None:
        raise ApiError(404, "PROGRAM_NOT_FOUND", f"no program {program_id}", {"programId": str(program_id)})
    return cached


@router.get(
    "/api/v1/programs/{program_id}/seats",
    response_model=SeatMapOut,
    response_model_by_alias=True,
    responses={
        404: {"description": "PROGRAM_NOT_FOUND, SHOW_TIME_NOT_FOUND, TICKET_CATEGORY_NOT_FOUND"},
        409: {"description": "SEATS_NOT_SELECTABLE: this program assigns seats itself"},
    },
)
async def get_seat_map(
    program_id: IdPath,
    res: ResourcesDep,
    show_time_id: Annotated[EntityId | None, Query(alias="showTimeId")] = None,
    ticket_category_id: Annotated[EntityId | None, Query(alias="ticketCategoryId")] = None,
) -> Response:
    """The seats of one show time (the first, unless ``showTimeId`` names another), grouped by price,
    each with its state in the Redis inventory (at most ``seat_map_ttl_s`` old): ``available``, or
    ``unavailable`` (held or sold). ``ticketCategoryId`` narrows the map to one ticket category: a
    stadium's whole map is megabytes, one stand a fraction of it (``seat-layout`` and ``seat-states``
    split it for clients that refresh)."""
    program, show = await _seat_show_time(res, program_id, show_time_id)
    categories = [c for c in show.ticket_categories if ticket_category_id in (None, c.id)]
    if not categories:
        raise ApiError(
            404,
            "TICKET_CATEGORY_NOT_FOUND",
            "no such ticket category in this show time",
            {"programId": str(program_id), "showTimeId": str(show.id), "ticketCategoryId": str(ticket_category_id)},
        )
    show_id = show.id

    async def build() -> bytes:
        return encode_seat_map(program_id, show_id, await seat_map(res.redis, program.id, categories))

    # Everyone in a sale looks at the same map: one build per map per ``seat_map_ttl_s``.
    key = (program_id, show_id, ticket_category_id)
    return Response(await res.reads.seat_maps.get(key, build), media_type="application/json")


@router.get(
    "/api/v1/programs/{program_id}/show-times/{show_time_id}/seat-layout",
    response_model=SeatLayoutOut,
    response_model_by_alias=True,
    responses={
        304: {"description": "Not Modified: If-None-Match names the current layoutVersion (ETag)"},
        404: {"description": "PROGRAM_NOT_FOUND, SHOW_TIME_NOT_FOUND"},
        409: {"description": "SEATS_NOT_SELECTABLE: this program assigns seats itself"},
    },
)
async def get_seat_layout(
    program_id: IdPath,
    show_time_id: IdPath,
    res: ResourcesDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Each ticket category of the show time (id, name, price) with its seats in row, then column order,
    as parallel arrays (``seatIds``, ``rows``, ``columns``): the order the bits of ``seat-states``
    follow. It changes only with the program (a reprice), so it carries a strong ``ETag`` (its
    ``layoutVersion`` in quotes) and ``Cache-Control: public, max-age=`` ``seat_layout_max_age_s``;
    ``If-None-Match`` naming the current one answers 304 without a body."""
    _, show = await _seat_show_time(res, program_id, show_time_id)
    layout = await _inventory_read(res.reads.seat_layouts.layout(program_id, show))
    max_age = res.settings.program_cache.seat_layout_max_age_s
    headers = {"ETag": layout.etag, "Cache-Control": f"public, max-age={max_age}"}
    if if_none_match is not None and _names_etag(if_none_match, layout.etag):
        return Response(status_code=304, headers=headers)
    return Response(layout.document, media_type="application/json", headers=headers)


@router.get(
    "/api/v1/programs/{program_id}/show-times/{show_time_id}/seat-states",
    response_model=SeatStatesOut,
    response_model_by_alias=True,
    responses={
        404: {"description": "PROGRAM_NOT_FOUND, SHOW_TIME_NOT_FOUND"},
        409: {"description": "SEATS_NOT_SELECTABLE: this program assigns seats itself"},
    },
)
async def get_seat_states(program_id: IdPath, show_time_id: IdPath, res: ResourcesDep) -> Response:
    """Per ticket category, its available count and a bitset (base64, most significant bit first): bit
    ``i`` is set while seat ``i`` of the layout named by ``layoutVersion`` is available in the Redis
    inventory. At most ``seat_map_ttl_s`` old: each process builds it once per that time per show
    time, for everyone asking meanwhile (and a shared cache may keep it as long). A few KB for a
    50,000-seat stadium."""
    _, show = await _seat_show_time(res, program_id, show_time_id)
    states = await _inventory_read(res.reads.seat_layouts.states(program_id, show))
    max_age = math.ceil(res.settings.program_cache.seat_map_ttl_s)
    return Response(states, media_type="application/json", headers={"Cache-Control": f"public, max-age={max_age}"})


async def _seat_show_time(
    res: Resources, program_id: int, show_time_id: int | None
) -> tuple[ProgramDetail, ShowTimeDetail]:
    """A show time whose seats buyers choose (the program's first when ``show_time_id`` is None); 404 for
    an unknown program or show time, 409 for a program that assigns seats itself."""
    program = (await _visible_program(res, program_id)).detail
    if not program.seat_selectable:
        raise ApiError(
            409,
            "SEATS_NOT_SELECTABLE",
            "seats of this program are assigned, not chosen",
            {"programId": str(program_id)},
        )
    show = next((s for s in program.show_times if show_time_id in (None, s.id)), None)
    if show is None:
        raise ApiError(
            404,
            "SHOW_TIME_NOT_FOUND",
            "no such show time of this program",
            {"programId": str(program_id), "showTimeId": str(show_time_id)},
        )
    return program, show


async def _inventory_read(read: Awaitable[T]) -> T:
    """``read``'s answer; 503 when the Redis inventory cannot be read."""
    try:
        return await read
    except REDIS_ERRORS as exc:
        raise dependency_unavailable(
            "SEAT_INVENTORY_UNAVAILABLE", "the seat inventory cannot be read now; retry", exc
        ) from exc


def _names_etag(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, as RFC 9110 asks of it)."""
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags
