"""Driving an ASGI app in process, for tests of the project's own middleware."""

from __future__ import annotations

from typing import Any

from starlette.types import Message


async def asgi_call(app: Any, method: str, path: str) -> list[Message]:
    """Every message ``app`` sends for one bodiless request."""
    sent: list[Message] = []
    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b"", "state": {}}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent
