"""Per-address limits on registration and login (checked by the edge before the body is read) and
the per-user limit on account changes, counted in the real Redis."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from redis.asyncio import Redis
from starlette.types import Message, Receive, Scope, Send

from api.edge import EdgeMiddleware
from api.errors import ApiError
from api.rate_limit import REGISTRATION_PATH, SESSIONS_PATH, limit_user_commands
from infra.redis import LuaScripts
from infra.settings import Settings

LIMIT = 2
ADDRESS, OTHER_ADDRESS = "192.0.2.10", "192.0.2.11"


def limited(settings: Settings, redis: Redis) -> Any:
    """What the edge and the routes reach as ``Resources``: low limits, under a key prefix of the test's own."""
    rate_limits = settings.rate_limits.model_copy(
        update={
            "key_prefix": f"t{uuid.uuid4().hex[:10]}",
            "registration_limit": LIMIT,
            "login_limit": LIMIT,
            "user_command_limit": LIMIT,
        }
    )
    return SimpleNamespace(
        settings=settings.model_copy(update={"rate_limits": rate_limits}),
        adapters=SimpleNamespace(scripts=LuaScripts(redis)),
    )


async def passed_on(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def status_of(edge: EdgeMiddleware, resources: Any, method: str, path: str, address: str = ADDRESS) -> int:
    body = b'{"mobile": "13800000000"}'
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "query_string": b"",
        "client": (address, 50_000),
        "app": SimpleNamespace(state=SimpleNamespace(resources=resources)),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await edge(scope, receive, send)
    return int(sent[0]["status"])


@pytest.mark.parametrize("path", [REGISTRATION_PATH, SESSIONS_PATH])
async def test_a_post_over_the_address_limit_is_refused_before_the_route(settings: Settings, redis: Redis, path: str):
    edge, resources = EdgeMiddleware(passed_on, settings.api), limited(settings, redis)
    within = [await status_of(edge, resources, "POST", path) for _ in range(LIMIT)]

    over = await status_of(edge, resources, "POST", path)

    assert within == [204] * LIMIT
    assert over == 429


async def test_registration_and_login_are_counted_apart(settings: Settings, redis: Redis):
    edge, resources = EdgeMiddleware(passed_on, settings.api), limited(settings, redis)
    for _ in range(LIMIT):
        await status_of(edge, resources, "POST", REGISTRATION_PATH)

    assert await status_of(edge, resources, "POST", SESSIONS_PATH) == 204


async def test_another_address_has_a_window_of_its_own(settings: Settings, redis: Redis):
    edge, resources = EdgeMiddleware(passed_on, settings.api), limited(settings, redis)
    for _ in range(LIMIT + 1):
        await status_of(edge, resources, "POST", SESSIONS_PATH)

    assert await status_of(edge, resources, "POST", SESSIONS_PATH, OTHER_ADDRESS) == 204


async def test_other_methods_on_the_sign_in_paths_are_not_counted(settings: Settings, redis: Redis):
    edge, resources = EdgeMiddleware(passed_on, settings.api), limited(settings, redis)
    for _ in range(LIMIT + 1):
        assert await status_of(edge, resources, "DELETE", SESSIONS_PATH) == 204

    assert await status_of(edge, resources, "POST", SESSIONS_PATH) == 204


async def test_account_changes_over_the_user_limit_are_refused_whatever_the_address(settings: Settings, redis: Redis):
    resources = limited(settings, redis)
    for _ in range(LIMIT):
        await limit_user_commands(resources, 42)

    with pytest.raises(ApiError) as refused:
        await limit_user_commands(resources, 42)
    await limit_user_commands(resources, 43)

    assert refused.value.status == 429
    assert refused.value.code == "RATE_LIMITED"
    assert refused.value.headers is not None and int(refused.value.headers["Retry-After"]) >= 1
