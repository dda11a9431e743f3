"""Program queries: the detail page of one program, served through the program detail cache."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response

from api.errors import ApiError
from api.models import CamelModel
from api.resources import ResourcesDep
from infra.postgres.pools import UNREACHABLE_ERRORS

router = APIRouter(tags=["programs"])

MAX_ID = (1 << 63) - 1


class TicketCategoryOut(CamelModel):
    id: str
    name: str
    price: str
    """Yuan, a decimal string with two places."""
    total: int
    remaining: int


class ShowTimeOut(CamelModel):
    id: str
    starts_at: datetime
    status: str
    ticket_categories: list[TicketCategoryOut]


class ProgramDetailOut(CamelModel):
    """The document the cache holds (infra.catalogue.detail); declared here for the API schema."""

    id: str
    title: str
    actor: str | None
    venue: str
    area_id: int
    parent_category_id: int
    category_id: int
    detail: str
    notices: Any
    per_order_limit: int
    per_account_limit: int
    seat_selectable: bool
    real_name_required: bool
    refund_policy: Any
    high_heat: bool
    issue_time: datetime | None
    payment_minutes: int
    status: str
    show_times: list[ShowTimeOut]


@router.get(
    "/api/v1/programs/{program_id}",
    response_model=ProgramDetailOut,
    responses={404: {"description": "No such program (or not published yet): PROGRAM_NOT_FOUND"}},
)
async def get_program_detail(
    program_id: Annotated[int, Path(ge=1, le=MAX_ID, description="Program id (a 63-bit integer)")],
    res: ResourcesDep,
) -> Response:
    """One program with its show times and ticket categories (prices, remaining counts)."""
    try:
        cached = await res.program_details.get(program_id)
    except UNREACHABLE_ERRORS as exc:
        raise ApiError(
            503,
            "CATALOGUE_UNAVAILABLE",
            "the program catalogue cannot be read now; retry",
            {"error": type(exc).__name__},
            headers={"Retry-After": "1"},
        ) from exc
    if cached is None:
        raise ApiError(404, "PROGRAM_NOT_FOUND", f"no program {program_id}", {"programId": str(program_id)})
    # The cached document is the response body already: no decoding, no re-encoding.
    return Response(cached.raw, media_type="application/json")
