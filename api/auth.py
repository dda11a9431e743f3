"""Credentials: the admin bearer token for /api/v1/admin routes."""

from __future__ import annotations

import secrets

from fastapi import Request

from api.errors import ApiError
from api.resources import ResourcesDep

BEARER_PREFIX = "bearer "


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[: len(BEARER_PREFIX)].lower() != BEARER_PREFIX:
        return None
    return header[len(BEARER_PREFIX) :].strip() or None


async def require_admin(request: Request, res: ResourcesDep) -> None:
    # async so FastAPI runs it on the event loop instead of handing it to the thread pool.
    token = bearer_token(request)
    if token is None:
        raise ApiError(
            401, "UNAUTHENTICATED", "an admin bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    if not secrets.compare_digest(token.encode(), res.settings.api.admin_token.encode()):
        raise ApiError(403, "FORBIDDEN", "this credential may not use admin routes")
