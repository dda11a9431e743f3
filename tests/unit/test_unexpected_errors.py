"""The last-resort answer to an unexpected error, driven as plain ASGI."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from api.observability import RequestContextMiddleware
from tests.asgi_calls import asgi_call


def _failing_app(after_start: bool) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if after_start:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("a bug")

    return app


async def test_an_unexpected_error_is_answered_500_in_the_envelope_and_not_raised_to_the_server():
    sent = await asgi_call(RequestContextMiddleware(_failing_app(after_start=False), access_log=None), "GET", "/x")

    assert sent[0]["status"] == 500
    assert orjson.loads(sent[1]["body"])["code"] == "INTERNAL_ERROR"


async def test_an_error_after_the_response_began_is_raised_so_the_server_closes_the_connection():
    app = RequestContextMiddleware(_failing_app(after_start=True), access_log=None)

    with pytest.raises(RuntimeError):
        await asgi_call(app, "GET", "/x")
