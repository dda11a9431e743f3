"""Logging in and out. ``POST /api/v1/sessions`` answers a signed access token for a mobile or email
and its password (the edge limits it per address first); ``DELETE /api/v1/sessions/current``
revokes the token it is called with (``commands/sessions.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.auth import CurrentUserDep
from api.commands import handled
from api.errors import ApiError
from api.models import CamelModel
from api.resources import ResourcesDep
from commands import sessions as handlers
from commands.sessions import LogIn, LoginLocked

router = APIRouter(tags=["users"])


class SessionOut(CamelModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    """Seconds the token is valid for."""
    user_id: str


@router.post(
    "/api/v1/sessions",
    status_code=201,
    response_model=SessionOut,
    response_model_by_alias=True,
    responses={
        401: {"description": "INVALID_CREDENTIALS: no account has this mobile or email and password"},
        429: {
            "description": "LOGIN_LOCKED: too many failures for this mobile or email (whether or not it has an "
            "account); or RATE_LIMITED for this address. See Retry-After.",
            "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
        },
    },
)
async def post_session(cmd: LogIn, res: ResourcesDep) -> SessionOut:
    """Log in with a mobile or an email and the password."""
    try:
        session = await handled(handlers.log_in(cmd, res.commands.sessions))
    except LoginLocked as exc:
        raise ApiError(
            429, "LOGIN_LOCKED", str(exc), {"retryAfterS": exc.retry_after_s}, {"Retry-After": str(exc.retry_after_s)}
        ) from None
    return SessionOut(access_token=session.access_token, expires_in=session.expires_in_s, user_id=str(session.user_id))


@router.delete("/api/v1/sessions/current", status_code=204)
async def delete_current_session(user: CurrentUserDep, res: ResourcesDep) -> Response:
    """Log out: this token is refused from now on, by every API process within about a second."""
    await handled(handlers.log_out(user.jti, user.expires_at, res.commands.sessions))
    return Response(status_code=204)
