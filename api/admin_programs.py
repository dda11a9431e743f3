"""Admin commands on the program catalogue: create a program, publish it, take it off sale,
move a show time, change a ticket category's price.

Decisions are taken here against the read model; versions of the program aggregate are
reserved in Redis so that concurrent commands on one program never share a version.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Response

from api.auth import require_admin
from api.commands import CorrelationDep, append_all
from api.models import CamelModel, IdPath
from api.resources import Resources, ResourcesDep
from commands.program import (
    CreateProgram,
    KnownReferences,
    RepriceTicketCategory,
    RescheduleShowTime,
    TakeOffSale,
    create_program,
    publish_program,
    reprice_ticket_category,
    reschedule_show_time,
    take_off_sale,
)
from events.program import ProgramEvent
from infra.redis_keys import program_version_counter
from infra.versions import reserve_versions
from queries.views import programs
from queries.views.reference import category_parents, existing_area_ids

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])


class ProgramAccepted(CamelModel):
    program_id: str
    """A string: program ids are 63-bit and would lose precision as JavaScript numbers."""
    events: int
    """Events appended; 0 when the command asked for what already is."""


async def _append(res: Resources, events: list[ProgramEvent], floor: int, correlation: CorrelationDep) -> None:
    if not events:
        return
    program_id = events[0].program_id
    first = await reserve_versions(res.scripts, program_version_counter(program_id), len(events), floor)
    await append_all(res, events, first_version=first, correlation=correlation)


@router.post("/api/v1/admin/programs", status_code=202, response_model=ProgramAccepted, response_model_by_alias=True)
async def post_program(
    cmd: CreateProgram, response: Response, res: ResourcesDep, correlation: CorrelationDep
) -> ProgramAccepted:
    """Create a draft program with its show times, ticket categories and seat layout."""
    refs = KnownReferences(
        await existing_area_ids(res.pools, [cmd.area_id]),
        await category_parents(res.pools, [cmd.parent_category_id, cmd.category_id]),
    )
    events = create_program(cmd, refs, res.ids, datetime.now(UTC))
    await _append(res, events, 0, correlation)
    response.headers["Location"] = f"/api/v1/programs/{events[0].program_id}"
    return ProgramAccepted(program_id=str(events[0].program_id), events=len(events))


@router.post(
    "/api/v1/admin/programs/{program_id}/publish",
    status_code=202,
    response_model=ProgramAccepted,
    response_model_by_alias=True,
)
async def post_publish(program_id: IdPath, res: ResourcesDep, correlation: CorrelationDep) -> ProgramAccepted:
    """Put a draft (or off-sale) program on sale."""
    current = await programs.get_program(res.shards, program_id)
    event = publish_program(program_id, current.status if current else None)
    await _append(res, [event], current.aggregate_version if current else 0, correlation)
    return ProgramAccepted(program_id=str(program_id), events=1)


@router.post(
    "/api/v1/admin/programs/{program_id}/off-sale",
    status_code=202,
    response_model=ProgramAccepted,
    response_model_by_alias=True,
)
async def post_off_sale(
    program_id: IdPath, cmd: TakeOffSale, res: ResourcesDep, correlation: CorrelationDep
) -> ProgramAccepted:
    """Take a program off sale: it stays visible to its buyers but can no longer be bought."""
    current = await programs.get_program(res.shards, program_id)
    event = take_off_sale(program_id, current.status if current else None, cmd)
    await _append(res, [event], current.aggregate_version if current else 0, correlation)
    return ProgramAccepted(program_id=str(program_id), events=1)


@router.patch(
    "/api/v1/admin/programs/{program_id}/show-times/{show_time_id}",
    status_code=202,
    response_model=ProgramAccepted,
    response_model_by_alias=True,
)
async def patch_show_time(
    program_id: IdPath, show_time_id: IdPath, cmd: RescheduleShowTime, res: ResourcesDep, correlation: CorrelationDep
) -> ProgramAccepted:
    """Move a show time that has not started yet; its ticket categories, seats and orders go with it."""
    current = await programs.get_program(res.shards, program_id)
    show = next((s for s in await programs.show_times_of(res.shards, program_id) if s.id == show_time_id), None)
    events = reschedule_show_time(
        program_id,
        current.status if current else None,
        show_time_id,
        show.starts_at if show else None,
        cmd,
        datetime.now(UTC),
    )
    await _append(res, list(events), current.aggregate_version if current else 0, correlation)
    return ProgramAccepted(program_id=str(program_id), events=len(events))


@router.patch(
    "/api/v1/admin/programs/{program_id}/ticket-categories/{ticket_category_id}",
    status_code=202,
    response_model=ProgramAccepted,
    response_model_by_alias=True,
)
async def patch_ticket_category(
    program_id: IdPath,
    ticket_category_id: IdPath,
    cmd: RepriceTicketCategory,
    res: ResourcesDep,
    correlation: CorrelationDep,
) -> ProgramAccepted:
    """Change a ticket category's price (and its seats'): orders decided from now on pay it,
    tickets already reserved keep theirs."""
    current = await programs.get_program(res.shards, program_id)
    category = next(
        (c for c in await programs.ticket_categories_of(res.shards, program_id) if c.id == ticket_category_id), None
    )
    events = reprice_ticket_category(
        program_id,
        current.status if current else None,
        ticket_category_id,
        (category.show_time_id, category.price) if category else None,
        cmd,
    )
    await _append(res, list(events), current.aggregate_version if current else 0, correlation)
    return ProgramAccepted(program_id=str(program_id), events=len(events))
