"""Admin commands on the program catalogue: create a program, publish it, take it off sale,
move a show time, change a ticket category's price. Each route parses, authorises, calls its
handler in ``commands/program.py`` and shapes the answer."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from api.auth import require_admin
from api.commands import CorrelationDep, handled
from api.models import CamelModel, IdPath
from api.resources import ResourcesDep
from commands import program as handlers
from commands.program import CreateProgram, RepriceTicketCategory, RescheduleShowTime, TakeOffSale

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])


class ProgramAccepted(CamelModel):
    program_id: str
    """A string: program ids are 63-bit and would lose precision as JavaScript numbers."""
    events: int
    """Events appended; 0 when the command asked for what already is."""

    @classmethod
    def of(cls, accepted: handlers.Accepted) -> ProgramAccepted:
        return cls(program_id=str(accepted.program_id), events=accepted.events)


@router.post("/api/v1/admin/programs", status_code=202, response_model=ProgramAccepted, response_model_by_alias=True)
async def post_program(
    cmd: CreateProgram, response: Response, res: ResourcesDep, correlation: CorrelationDep
) -> ProgramAccepted:
    """Create a draft program with its show times, ticket categories and seat layout."""
    accepted = await handled(handlers.create_program(cmd, res.commands.catalogue, correlation))
    response.headers["Location"] = f"/api/v1/programs/{accepted.program_id}"
    return ProgramAccepted.of(accepted)


@router.post(
    "/api/v1/admin/programs/{program_id}/publish",
    status_code=202,
    response_model=ProgramAccepted,
    response_model_by_alias=True,
)
async def post_publish(program_id: IdPath, res: ResourcesDep, correlation: CorrelationDep) -> ProgramAccepted:
    """Put a draft (or off-sale) program on sale."""
    return ProgramAccepted.of(
        await handled(handlers.publish_program(program_id, res.commands.catalogue, correlation))
    )


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
    return ProgramAccepted.of(
        await handled(handlers.take_off_sale(program_id, cmd, res.commands.catalogue, correlation))
    )


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
    return ProgramAccepted.of(
        await handled(
            handlers.reschedule_show_time(program_id, show_time_id, cmd, res.commands.catalogue, correlation)
        )
    )


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
    return ProgramAccepted.of(
        await handled(
            handlers.reprice_ticket_category(program_id, ticket_category_id, cmd, res.commands.catalogue, correlation)
        )
    )
