"""Accounts: registering, the signed-in user's profile, real-name verification, ticket buyers, and
closing the account. Each route parses, authorises (the token's user, never an id from the
request), calls its handler in ``commands/user.py`` and answers from the read side
(``queries/users.py``); the edge limits registration per address, these routes limit account
changes per user."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.auth import CurrentUserDep, every_token_of
from api.commands import CorrelationDep, handled
from api.models import CamelModel
from api.rate_limit import limit_user_commands
from api.resources import ResourcesDep
from commands import user as handlers
from commands.user import AddTicketBuyer, ChangeProfile, DeleteUser, RegisterUser, VerifyRealName
from events.program import EntityId
from queries.users import TicketBuyerOut, UserProfileOut, ticket_buyer_out

router = APIRouter(tags=["users"])

ME = "/api/v1/users/me"


class RegisteredOut(CamelModel):
    user_id: str


class TicketBuyersOut(CamelModel):
    items: list[TicketBuyerOut]
    limit: int
    """How many ticket buyers a user may keep."""


@router.post(
    "/api/v1/users",
    status_code=201,
    response_model=RegisteredOut,
    response_model_by_alias=True,
    responses={
        409: {"description": "MOBILE_TAKEN or EMAIL_TAKEN: another account has it"},
        422: {
            "description": "PASSWORDS_DIFFER, PASSWORD_TOO_WEAK, MOBILE_INVALID, EMAIL_INVALID, CAPTCHA_REQUIRED, "
            "CAPTCHA_WRONG or VALIDATION_FAILED"
        },
        503: {"description": "USER_NOT_CONFIRMED (the account may exist: try to log in), or a store is down"},
    },
)
async def post_user(
    cmd: RegisterUser, res: ResourcesDep, correlation_id: CorrelationDep, response: Response
) -> RegisteredOut:
    """Open an account for a mobile (and an email). When this answers, the account can log in."""
    user_id = await handled(handlers.register_user(cmd, res.commands.accounts, correlation_id))
    response.headers["Location"] = ME
    return RegisteredOut(user_id=str(user_id))


@router.get(ME, response_model=UserProfileOut, response_model_by_alias=True)
async def get_me(user: CurrentUserDep, res: ResourcesDep) -> UserProfileOut:
    """The signed-in user's profile, every personal value masked."""
    return await handled(res.reads.users.profile(user.user_id))


@router.patch(
    ME,
    response_model=UserProfileOut,
    response_model_by_alias=True,
    responses={
        403: {"description": "PASSWORD_INCORRECT: the current password is not right"},
        409: {"description": "MOBILE_TAKEN or EMAIL_TAKEN"},
    },
)
async def patch_me(
    cmd: ChangeProfile, user: CurrentUserDep, res: ResourcesDep, correlation_id: CorrelationDep
) -> UserProfileOut:
    """Change the name, gender, email, mobile or password (the last with ``currentPassword``). The
    old mobile or email no longer logs in once this answers."""
    await limit_user_commands(res, user.user_id)
    await handled(handlers.change_profile(user.user_id, cmd, res.commands.accounts, correlation_id))
    return await handled(res.reads.users.profile(user.user_id))


@router.delete(
    ME,
    status_code=204,
    responses={403: {"description": "PASSWORD_INCORRECT: the password is not right"}},
)
async def delete_me(
    cmd: DeleteUser, user: CurrentUserDep, res: ResourcesDep, correlation_id: CorrelationDep
) -> Response:
    """Close the account for good: its personal data becomes unreadable everywhere (its data key is
    destroyed), it can no longer log in, and its mobile and email are free again."""
    await limit_user_commands(res, user.user_id)
    await handled(handlers.delete_user(user.user_id, cmd, res.commands.accounts, correlation_id))
    await handled(res.commands.revoked.revoke(every_token_of(user.user_id), _longest_token_life(res)))
    return Response(status_code=204)


@router.post(
    f"{ME}/verification",
    response_model=UserProfileOut,
    response_model_by_alias=True,
    responses={
        409: {"description": "REAL_NAME_ALREADY_VERIFIED"},
        422: {"description": "ID_NUMBER_INVALID, NAME_INVALID or VALIDATION_FAILED"},
    },
)
async def post_verification(
    cmd: VerifyRealName, user: CurrentUserDep, res: ResourcesDep, correlation_id: CorrelationDep
) -> UserProfileOut:
    """Verify the user's real name with an identity document (once per user)."""
    await limit_user_commands(res, user.user_id)
    await handled(handlers.verify_real_name(user.user_id, cmd, res.commands.accounts, correlation_id))
    return await handled(res.reads.users.profile(user.user_id))


@router.get(f"{ME}/ticket-buyers", response_model=TicketBuyersOut, response_model_by_alias=True)
async def get_ticket_buyers(user: CurrentUserDep, res: ResourcesDep) -> TicketBuyersOut:
    """The people the user may buy tickets for, oldest first, masked."""
    items = await handled(res.reads.users.ticket_buyers(user.user_id))
    return TicketBuyersOut(items=items, limit=res.settings.users.ticket_buyers_max)


@router.post(
    f"{ME}/ticket-buyers",
    status_code=201,
    response_model=TicketBuyerOut,
    response_model_by_alias=True,
    responses={
        409: {"description": "TICKET_BUYER_EXISTS (this document is already one) or TICKET_BUYERS_LIMIT"},
        422: {"description": "ID_NUMBER_INVALID, NAME_INVALID or VALIDATION_FAILED"},
    },
)
async def post_ticket_buyer(
    cmd: AddTicketBuyer, user: CurrentUserDep, res: ResourcesDep, correlation_id: CorrelationDep, response: Response
) -> TicketBuyerOut:
    """Add a person to buy for, by their identity document (validated per type); answered masked."""
    await limit_user_commands(res, user.user_id)
    added = await handled(handlers.add_ticket_buyer(user.user_id, cmd, res.commands.accounts, correlation_id))
    response.headers["Location"] = f"{ME}/ticket-buyers/{added.ticket_buyer_id}"
    return ticket_buyer_out(added.ticket_buyer_id, added.name, added.id_type, added.id_number)


@router.delete(
    f"{ME}/ticket-buyers/{{ticket_buyer_id}}",
    status_code=204,
    responses={404: {"description": "TICKET_BUYER_NOT_FOUND: the user has no such ticket buyer"}},
)
async def delete_ticket_buyer(
    ticket_buyer_id: Annotated[EntityId, Path()],
    user: CurrentUserDep,
    res: ResourcesDep,
    correlation_id: CorrelationDep,
) -> Response:
    """Remove one of the user's ticket buyers."""
    await limit_user_commands(res, user.user_id)
    await handled(handlers.remove_ticket_buyer(user.user_id, ticket_buyer_id, res.commands.accounts, correlation_id))
    return Response(status_code=204)


def _longest_token_life(res: ResourcesDep) -> int:
    """Until when a token issued now could be accepted: every token of the user ends before it."""
    tokens = res.settings.tokens
    return int(time.time()) + tokens.access_token_ttl_s + tokens.leeway_s
