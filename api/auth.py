"""Credentials: the admin bearer token for /api/v1/admin routes, and signed-in users' access tokens.

The edge (``api/edge.py``) checks it for every path under ``ADMIN_PATH_PREFIX`` before a body is
read; ``require_admin`` checks it again on the admin routers, so a route put outside the prefix
by mistake is still closed (only later, after FastAPI has read its body). With one admin token,
any token but that one is no valid credential: 401, never 403 (a valid credential without the
right, which has no case yet).

``require_user`` (``CurrentUserDep``) admits a signed-in user: an access token that verifies
(``infra/tokens.py``, no I/O) and that this process has not seen revoked (``infra/revocations.py``,
a local set, no I/O either), so a signed-in request costs no round trip to a store. Each refusal
is 401 with a code of its own: ``UNAUTHENTICATED`` (no token, or not one of ours),
``TOKEN_EXPIRED`` (sign in again), ``TOKEN_REVOKED`` (signed out).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError
from api.resources import Resources, ResourcesDep
from infra.tokens import ExpiredAccessToken, InvalidAccessToken

ADMIN_PATH_PREFIX = "/api/v1/admin/"
BEARER_PREFIX = b"bearer "


def bearer_token(authorization: bytes | None) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if authorization is None or authorization[: len(BEARER_PREFIX)].lower() != BEARER_PREFIX:
        return None
    return authorization[len(BEARER_PREFIX) :].strip() or None


def check_admin(authorization: bytes | None, admin_token: bytes) -> None:
    """Raise 401 ``UNAUTHENTICATED`` unless the header carries the admin token."""
    token = bearer_token(authorization)
    if token is None:
        raise ApiError(
            401, "UNAUTHENTICATED", "an admin bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    if not secrets.compare_digest(token, admin_token):
        raise ApiError(
            401,
            "UNAUTHENTICATED",
            "the bearer token is not valid",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


async def require_admin(request: Request, res: ResourcesDep) -> None:
    # async so FastAPI runs it on the event loop instead of handing it to the thread pool.
    header = request.headers.get("authorization")
    check_admin(None if header is None else header.encode("latin-1"), res.settings.api.admin_token.encode())


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in user a request acts for, and the token it came with."""

    user_id: int
    jti: str
    expires_at: int
    """The token's ``exp``, unix seconds (what a revocation of it names)."""


async def require_user(request: Request, res: ResourcesDep) -> CurrentUser:
    """The user of a valid ``Authorization: Bearer <access token>``; 401 otherwise."""
    header = request.headers.get("authorization")
    return user_of(None if header is None else header.encode("latin-1"), res)


def user_of(authorization: bytes | None, res: Resources) -> CurrentUser:
    """``require_user`` on a raw header (also for the edge, before FastAPI reads the request)."""
    token = bearer_token(authorization)
    if token is None:
        raise ApiError(401, "UNAUTHENTICATED", "an access token is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        claims = res.commands.tokens.verify(token.decode("latin-1"))
    except ExpiredAccessToken as exc:
        raise _invalid_token("TOKEN_EXPIRED", "the access token has expired; sign in again") from exc
    except InvalidAccessToken as exc:
        raise _invalid_token("UNAUTHENTICATED", "the access token is not valid") from exc
    revoked = res.commands.revoked
    if revoked.is_revoked(claims.token_id) or revoked.is_revoked(every_token_of(claims.user_id)):
        raise _invalid_token("TOKEN_REVOKED", "the access token has been revoked; sign in again")
    return CurrentUser(claims.user_id, claims.token_id, int(claims.expires_at.timestamp()))


CurrentUserDep = Annotated[CurrentUser, Depends(require_user)]


def every_token_of(user_id: int) -> str:
    """What a revocation names to revoke all of a user's tokens at once (a deleted account): no
    token id has this form, since ids are URL-safe base64 without a colon."""
    return f"user:{user_id}"


def _invalid_token(code: str, message: str) -> ApiError:
    # RFC 6750: a token that was presented but is expired, revoked or malformed is "invalid_token".
    return ApiError(401, code, message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
