"""What a request passes before FastAPI sees it, as plain ASGI middleware.

FastAPI reads and parses a body before it solves a route's dependencies, so a credential checked
there comes after the cost (a 20 MB JSON array cost 165 MB and half a second of the event loop
before its 401). Here, in order, before a byte of the body is read:

1. ``HEAD`` is served as ``GET`` (FastAPI's routes declare GET only); uvicorn, whose scope still
   says HEAD, sends the headers without the body.
2. Admin paths (``api/auth.py:ADMIN_PATH_PREFIX``): the address's rate limit, then the credential;
   the captcha routes, and ``POST`` to registration and login (``SIGN_IN_PATHS``): the address's
   rate limit.
3. A body (on methods that carry one): JSON only (415), no larger than its route allows (413, from
   ``Content-Length`` when given), read whole within ``body_timeout_s`` (408) and handed on.
4. ``POST /api/v1/orders`` for a category this process saw sold out: 409 ``SOLD_OUT``, answered
   here (``api/orders.py:sold_out_answer``) at a fraction of the route's cost.

A request that is neither admin nor carries a body (every buyer's read) passes with a few
comparisons. A refusal that leaves a body unread closes the connection unless the body is
declared and small enough for uvicorn to discard cheaply.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import ADMIN_PATH_PREFIX, check_admin
from api.body_limit import (
    BodyLimits,
    check_form,
    check_json,
    declared_length,
    discard_body,
    read_body,
    replayed,
    too_large,
)
from api.errors import ApiError, error_response
from api.orders import ORDERS_PATH, SOLD_OUT_ROUTE, sold_out_answer
from api.payments import NOTIFY_PATH_PREFIX
from api.rate_limit import CAPTCHA_PATHS, SIGN_IN_PATHS, limit_admin_commands, limit_captcha, limit_sign_in
from api.resources import Resources
from infra.settings import ApiSettings

# Methods whose bodies the routes read; the bodies of others are never read (uvicorn discards them).
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, settings: ApiSettings):
        self.app = app
        self._limits = BodyLimits.of(settings)
        self._admin_token = settings.admin_token.encode()
        self._body_timeout_s = settings.body_timeout_s
        self._drain_bytes = settings.refused_body_drain_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["method"] == "HEAD":
            await self._as_get(scope, receive, send)
        elif scope["method"] in BODY_METHODS or scope["path"].startswith(ADMIN_PATH_PREFIX):
            await self._admit(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _as_get(self, scope: Scope, receive: Receive, send: Send) -> None:
        as_get = {**scope, "method": "GET"}
        try:
            await self(as_get, receive, send)
        finally:
            # The outer middleware names the matched route in its metrics and access line.
            if "route" in as_get:
                scope["route"] = as_get["route"]

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        method, path = scope["method"], scope["path"]
        limit = self._limits.limit(method, path)
        length: int | None = 0
        body: bytes | None = None
        try:
            if method in BODY_METHODS:
                length = declared_length(headers.get(b"content-length"), headers.get(b"transfer-encoding"))
            if path.startswith(ADMIN_PATH_PREFIX):
                client = scope.get("client")
                await limit_admin_commands(_resources(scope), client[0] if client else None)
                check_admin(headers.get(b"authorization"), self._admin_token)
            elif path in CAPTCHA_PATHS:
                client = scope.get("client")
                await limit_captcha(_resources(scope), client[0] if client else None, path)
            elif method == "POST" and path in SIGN_IN_PATHS:
                client = scope.get("client")
                await limit_sign_in(_resources(scope), client[0] if client else None, path)
            if length != 0:
                (check_form if path.startswith(NOTIFY_PATH_PREFIX) else check_json)(headers.get(b"content-type"))
                if length is not None and length > limit:
                    raise too_large(limit)
                body = await read_body(receive, limit, self._body_timeout_s)
        except ApiError as refusal:
            # A small declared body that was not read is discarded by uvicorn, and the connection
            # kept; any other is drained (unless its client was too slow to send it, or announced
            # more than could ever be drained) and its connection closed.
            if length is None or length > limit or refusal.status in (408, 413):
                drain = refusal.status != 408 and (length is None or length <= self._drain_bytes)
                await self._refuse_and_close(refusal, scope, receive, send, drain)
            else:
                await _response(refusal)(scope, receive, send)
            return
        except ClientDisconnect:
            return
        if body and method == "POST" and path == ORDERS_PATH:
            sold_out = await sold_out_answer(_resources(scope), headers, body)
            if sold_out is not None:
                scope["route"] = SOLD_OUT_ROUTE
                await sold_out(scope, receive, send)
                return
        await self.app(scope, receive if body is None else replayed(body, receive), send)

    async def _refuse_and_close(
        self, refusal: ApiError, scope: Scope, receive: Receive, send: Send, drain: bool
    ) -> None:
        response = _response(refusal, {"Connection": "close"})
        # The whole answer goes out now, but the response ends (and uvicorn closes the connection)
        # only once the rest of the body is drained: closing a socket with unread data resets it,
        # and a client still sending would lose the answer (a web server's "lingering close").
        await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body, "more_body": True})
        if drain:
            await discard_body(receive, self._drain_bytes, self._body_timeout_s)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _resources(scope: Scope) -> Resources:
    res: Resources = scope["app"].state.resources
    return res


def _response(refusal: ApiError, extra_headers: dict[str, str] | None = None) -> Response:
    headers = {**(refusal.headers or {}), **(extra_headers or {})}
    return error_response(refusal.status, refusal.code, refusal.message, refusal.details, headers)
