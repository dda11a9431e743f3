"""The error envelope ``{"code","message","details"}`` for every error the API returns."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from aggregates.errors import Conflict, DomainError, Forbidden, InvalidCommand, NotFound, RateLimited, Unauthenticated

log = structlog.get_logger(__name__)

DOMAIN_STATUS: dict[type[DomainError], int] = {
    InvalidCommand: 422,
    NotFound: 404,
    Conflict: 409,
    Forbidden: 403,
    Unauthenticated: 401,
    RateLimited: 429,
}
HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


class ApiError(Exception):
    """An error raised at the edge (auth, dependencies) with its status and stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.headers = headers


def dependency_unavailable(code: str, message: str, cause: BaseException) -> ApiError:
    """503 with Retry-After for a store or broker that did not answer: the client may retry."""
    return ApiError(503, code, message, {"error": type(cause).__name__}, headers={"Retry-After": "1"})


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> Response:
    """The envelope as a response, encoded once with orjson (FastAPI's ORJSONResponse is deprecated)."""
    body = orjson.dumps({"code": code, "message": message, "details": details or {}})
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _domain_status(exc: DomainError) -> int:
    for kind, status in DOMAIN_STATUS.items():
        if isinstance(exc, kind):
            return status
    return 400


def domain_error_response(exc: DomainError) -> Response:
    """A rule's refusal as the envelope, with the status of its kind."""
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
    return error_response(_domain_status(exc), exc.code, exc.message, exc.details, headers)


async def _on_domain_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return domain_error_response(exc)


async def _on_api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": [str(p) for p in e.get("loc", ())], "type": e.get("type"), "message": e.get("msg")}
        for e in exc.errors()
    ]
    if any(e["type"] == "json_invalid" for e in errors):
        return error_response(400, "MALFORMED_BODY", "the request body is not valid JSON", {"errors": errors})
    return error_response(422, "VALIDATION_FAILED", "the request did not pass validation", {"errors": errors})


async def _on_http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))


def internal_error_response(exc: Exception) -> Response:
    """500 ``INTERNAL_ERROR`` for an exception no handler expected, logged with its traceback."""
    log.error("api.unhandled_error", error=repr(exc), exc_info=exc)
    return error_response(500, "INTERNAL_ERROR", "an unexpected error occurred; it has been logged")


async def _on_unexpected(_: Request, exc: Exception) -> Response:
    # The last resort, behind api/observability.py's: Starlette re-raises after it (uvicorn then
    # closes the connection), so it only sees an error of the outermost middleware itself.
    return internal_error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
