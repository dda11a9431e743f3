"""Login lockout on the real Redis (``lua/login_failure.lua``): the fifth failure within the window
locks the identifier for a whole window."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from redis.asyncio import Redis

from infra.login_attempts import LoginAttempts
from infra.redis import LuaScripts
from infra.redis_keys import login_failures
from infra.settings import Settings, UserSettings

FAILURES_MAX = 5
WINDOW_MS = 1_000
# Redis and the test measure the window a few milliseconds apart.
SLACK_MS = 100


@pytest_asyncio.fixture
async def users(settings: Settings) -> UserSettings:
    """A short window, under a key prefix of the test's own."""
    return settings.users.model_copy(
        update={
            "key_prefix": f"t{uuid.uuid4().hex[:10]}",
            "login_failures_max": FAILURES_MAX,
            "login_window_ms": WINDOW_MS,
        }
    )


@pytest_asyncio.fixture
async def attempts(redis: Redis, users: UserSettings) -> AsyncIterator[LoginAttempts]:
    yield LoginAttempts(redis, LuaScripts(redis), users)


@pytest_asyncio.fixture
async def identifier(redis: Redis, users: UserSettings) -> AsyncIterator[str]:
    blind = uuid.uuid4().hex
    yield blind
    await redis.delete(login_failures(users.key_prefix, blind))


async def fail(attempts: LoginAttempts, identifier: str, times: int) -> list[int | None]:
    return [await attempts.record_failure(identifier) for _ in range(times)]


async def test_four_failures_do_not_lock_the_identifier(attempts: LoginAttempts, identifier: str):
    answers = await fail(attempts, identifier, FAILURES_MAX - 1)

    assert answers == [None] * (FAILURES_MAX - 1)
    assert await attempts.retry_after_ms(identifier) is None


async def test_the_fifth_failure_locks_the_identifier_for_the_window(attempts: LoginAttempts, identifier: str):
    await fail(attempts, identifier, FAILURES_MAX - 1)

    locking = await attempts.record_failure(identifier)
    retry_after_ms = await attempts.retry_after_ms(identifier)

    assert locking == WINDOW_MS
    assert retry_after_ms is not None
    assert WINDOW_MS - SLACK_MS <= retry_after_ms <= WINDOW_MS


async def test_another_identifier_is_not_locked_when_one_is(attempts: LoginAttempts, identifier: str):
    await fail(attempts, identifier, FAILURES_MAX)

    assert await attempts.retry_after_ms(uuid.uuid4().hex) is None


async def test_asking_counts_no_failure(attempts: LoginAttempts, identifier: str):
    for _ in range(FAILURES_MAX * 2):
        await attempts.retry_after_ms(identifier)

    assert await attempts.record_failure(identifier) is None


async def test_the_lock_lasts_a_whole_window_from_the_locking_failure(attempts: LoginAttempts, identifier: str):
    await fail(attempts, identifier, FAILURES_MAX - 1)
    await asyncio.sleep(WINDOW_MS / 2 / 1000)

    await attempts.record_failure(identifier)
    retry_after_ms = await attempts.retry_after_ms(identifier)

    assert retry_after_ms is not None
    assert retry_after_ms > WINDOW_MS - SLACK_MS


async def test_a_failure_while_locked_does_not_extend_the_lock(attempts: LoginAttempts, identifier: str):
    await fail(attempts, identifier, FAILURES_MAX)
    await asyncio.sleep(WINDOW_MS / 2 / 1000)

    during = await attempts.record_failure(identifier)

    assert during is not None
    assert during <= WINDOW_MS / 2 + SLACK_MS


async def test_the_lock_ends_with_its_window(attempts: LoginAttempts, identifier: str):
    await fail(attempts, identifier, FAILURES_MAX)

    await asyncio.sleep((WINDOW_MS + SLACK_MS) / 1000)

    assert await attempts.retry_after_ms(identifier) is None
    assert await attempts.record_failure(identifier) is None


async def test_failures_spread_over_more_than_a_window_do_not_lock(attempts: LoginAttempts, identifier: str):
    await fail(attempts, identifier, FAILURES_MAX - 1)
    await asyncio.sleep((WINDOW_MS + SLACK_MS) / 1000)

    assert await attempts.record_failure(identifier) is None
