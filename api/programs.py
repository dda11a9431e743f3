"""Program queries: the detail page of one program, served through the program detail cache, and its seat map."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.errors import ApiError, dependency_unavailable
from api.models import IdPath
from api.resources import Resources, ResourcesDep, resources_of
from events.program import EntityId
from infra.postgres.pools import UNREACHABLE_ERRORS
from queries.cache import CachedDetail
from queries.seat_map import encode_seat_map, seat_map
from queries.shapes import ProgramDetailOut, SeatMapOut

router = APIRouter(tags=["programs"])


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
    stadium's whole map is megabytes, one stand a fraction of it."""
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
