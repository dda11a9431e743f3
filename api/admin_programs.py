"""Admin commands on the program catalogue: create a program, publish it, take it off sale.

Decisions are taken here against the read model; versions of the program aggregate are
reserved in Redis so that concurrent commands on one program never share a version.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Response

from api.auth import require_admin
from api.commands import CorrelationDep, append_all
from api.models import CamelModel
from api.resources import Resources, ResourcesDep
from commands.program import (
    CreateProgram,
    KnownReferences,
    TakeOffSale,
    create_program,
    publish_program,
    take_off_sale,
)
from events.program import ProgramEvent
from infra.postgres.views import programs
from infra.postgres.views.reference import category_parents, existing_area_ids
from infra.redis_keys import program_version_counter
from infra.versions import reserve_versions

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])


class ProgramAccepted(CamelModel):
    program_id: str
    """A string: program ids are 63-bit and would lose precision as JavaScript numbers."""
    events: int


async def _append(res: Resources, events: list[ProgramEvent], floor: int, correlation: CorrelationDep) -> None:
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
async def post_publish(program_id: int, res: ResourcesDep, correlation: CorrelationDep) -> ProgramAccepted:
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
    program_id: int, cmd: TakeOffSale, res: ResourcesDep, correlation: CorrelationDep
) -> ProgramAccepted:
    """Take a program off sale: it stays visible to its buyers but can no longer be bought."""
    current = await programs.get_program(res.shards, program_id)
    event = take_off_sale(program_id, current.status if current else None, cmd)
    await _append(res, [event], current.aggregate_version if current else 0, correlation)
    return ProgramAccepted(program_id=str(program_id), events=1)
