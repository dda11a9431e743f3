"""Credentials: the admin bearer token for /api/v1/admin routes.

The edge (``api/edge.py``) checks it for every path under ``ADMIN_PATH_PREFIX`` before a body is
read; ``require_admin`` checks it again on the admin routers, so a route put outside the prefix
by mistake is still closed (only later, after FastAPI has read its body). With one admin token,
any token but that one is no valid credential: 401, never 403 (a valid credential without the
right, which has no case yet).
"""

from __future__ import annotations

import secrets

from fastapi import Request

from api.errors import ApiError
from api.resources import ResourcesDep

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
