"""Request bodies at the edge: how large each route's may be, that it is JSON, and how long it
may take to arrive (``ApiSettings.body_limit_bytes``, ``body_limits``, ``body_timeout_s``).

A body declared larger than its route allows is refused from its ``Content-Length`` before a byte
of it is read; a chunked one is counted as it arrives and refused as soon as it passes the limit.
A body that is read whole is handed to the app in one message, so FastAPI joins nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from starlette.requests import ClientDisconnect
from starlette.routing import compile_path
from starlette.types import Message, Receive

from api.errors import ApiError
from infra.settings import ApiSettings


class BodyLimits:
    """The largest body of each route, by method and path (routes are not matched yet at the edge)."""

    def __init__(self, default: int, per_route: dict[str, int]):
        self.default = default
        self._exact: dict[tuple[str, str], int] = {}
        self._templates: list[tuple[str, re.Pattern[str], int]] = []
        for route, limit in per_route.items():
            method, _, path = route.partition(" ")
            if "{" in path:
                self._templates.append((method, compile_path(path)[0], limit))
            else:
                self._exact[method, path] = limit

    @classmethod
    def of(cls, settings: ApiSettings) -> BodyLimits:
        return cls(settings.body_limit_bytes, settings.body_limits)

    def limit(self, method: str, path: str) -> int:
        exact = self._exact.get((method, path))
        if exact is not None:
            return exact
        for template_method, pattern, limit in self._templates:
            if template_method == method and pattern.match(path):
                return limit
        return self.default


def declared_length(content_length: bytes | None, transfer_encoding: bytes | None) -> int | None:
    """The body's length as its headers give it: None when it is chunked (unknown until read)."""
    if transfer_encoding is not None and b"chunked" in transfer_encoding.lower():
        return None
    if content_length is None:
        return 0
    try:
        return int(content_length)
    except ValueError:  # uvicorn's parser refuses these first; kept for other servers
        raise ApiError(400, "BAD_REQUEST", "Content-Length is not a number") from None


FORM = b"application/x-www-form-urlencoded"


def check_form(content_type: bytes | None) -> None:
    """A payment provider's notification is a form, as the provider sends it: 415 for any other."""
    media = (content_type or b"").partition(b";")[0].strip().lower()
    if media != FORM:
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "a notification body is application/x-www-form-urlencoded",
            {"contentType": media.decode("latin-1") or None},
        )


def check_json(content_type: bytes | None) -> None:
    """Every body this API reads is JSON (but a provider's notification): 415 for any other (or no)
    content type."""
    media = (content_type or b"").partition(b";")[0].strip().lower()
    if media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json")):
        return
    raise ApiError(
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "request bodies are application/json",
        {"contentType": media.decode("latin-1") or None},
    )


def too_large(limit: int) -> ApiError:
    return ApiError(
        413, "PAYLOAD_TOO_LARGE", f"the request body is over this route's limit of {limit} bytes", {"limit": limit}
    )


async def read_body(receive: Receive, limit: int, timeout_s: float) -> bytes:
    """The whole body, counted as it arrives: 413 past ``limit``, 408 if it takes over ``timeout_s``."""
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect
                body += message.get("body", b"")
                if len(body) > limit:
                    raise too_large(limit)
                if not message.get("more_body", False):
                    return bytes(body)
    except TimeoutError:
        raise ApiError(
            408,
            "REQUEST_TIMEOUT",
            f"the request body did not arrive within {timeout_s:g} s",
            {"timeoutS": timeout_s, "received": len(body)},
        ) from None


async def discard_body(receive: Receive, max_bytes: int, timeout_s: float) -> None:
    """Read and drop what remains of a refused body, up to ``max_bytes`` or ``timeout_s``."""
    discarded = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while discarded <= max_bytes:
                message = await receive()
                discarded += len(message.get("body", b""))
                if message["type"] == "http.disconnect" or not message.get("more_body", False):
                    return


def replayed(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read, in one message, then defers to the server's."""
    given = False

    async def receive_replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_replayed
