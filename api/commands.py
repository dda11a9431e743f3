"""What every command route shares: the caller's correlation id, and turning a handler's
``Unavailable`` (the log or a store did not answer) into 503 (the client may retry)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Annotated, TypeVar

import structlog
from fastapi import Depends, Request
from uuid_utils.compat import uuid7

from api.errors import ApiError, dependency_unavailable
from commands.ports import Unavailable

CORRELATION_HEADER = "x-correlation-id"
T = TypeVar("T")


async def correlation_id(request: Request) -> uuid.UUID | None:
    """The command's correlation id: the caller's (``X-Correlation-Id``, checked before any decision
    is taken), or a new one. Every event the command appends carries it, and so do the processors'
    log lines about them; the access line and the answer's ``X-Correlation-Id`` header give it back
    (``damai logs --correlation``)."""
    raw = request.headers.get(CORRELATION_HEADER)
    if raw is None:
        found = uuid7()
    else:
        try:
            found = uuid.UUID(raw)
        except ValueError:
            raise ApiError(400, "BAD_CORRELATION_ID", f"{CORRELATION_HEADER} must be a UUID") from None
    request.state.correlation_id = str(found)
    structlog.contextvars.bind_contextvars(correlation_id=str(found))
    return found


CorrelationDep = Annotated[uuid.UUID | None, Depends(correlation_id)]


async def handled(call: Awaitable[T]) -> T:
    """Await a handler; 503 with the dependency's own code when the log or a store did not answer."""
    try:
        return await call
    except Unavailable as exc:
        raise dependency_unavailable(exc.code, exc.message, exc) from exc
