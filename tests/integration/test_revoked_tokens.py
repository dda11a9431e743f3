"""Revoked access tokens on the real Redis: one process revokes, every process refuses within a moment."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import cast

import pytest_asyncio
from redis.asyncio import Redis

from infra.background import STOP_WITHIN_S
from infra.redis import create_redis
from infra.redis_keys import revoked_tokens
from infra.revocations import RevokedTokens
from infra.settings import Settings, UserSettings

TOKEN_LIFE_S = 3_600
SEEN_WITHIN_S = 1.0
STOP_CYCLES = 300


@pytest_asyncio.fixture
async def users(settings: Settings, redis: Redis) -> AsyncIterator[UserSettings]:
    """User settings under a key prefix of the test's own (a revocation stream no other test writes)."""
    users = settings.users.model_copy(update={"key_prefix": f"t{uuid.uuid4().hex[:10]}"})
    yield users
    await redis.delete(revoked_tokens(users.key_prefix))


@pytest_asyncio.fixture
async def processes(settings: Settings, users: UserSettings) -> AsyncIterator[Callable[[], RevokedTokens]]:
    """Makes started ``RevokedTokens``, each on a Redis client of its own (as two API processes)."""
    opened: list[tuple[RevokedTokens, Redis]] = []

    def open_one() -> RevokedTokens:
        client = create_redis(settings.redis)
        revoked = RevokedTokens(client, users, TOKEN_LIFE_S)
        opened.append((revoked, client))
        return revoked

    yield open_one
    for revoked, client in opened:
        await revoked.stop()
        await client.aclose()


async def started(revoked: RevokedTokens) -> RevokedTokens:
    await revoked.start()
    return revoked


def a_token() -> tuple[str, int]:
    return uuid.uuid4().hex, int(time.time()) + TOKEN_LIFE_S


async def seen_after(revoked: RevokedTokens, jti: str, deadline_s: float) -> float | None:
    """Seconds until ``revoked`` refuses ``jti``; None if it did not within the deadline."""
    began = time.perf_counter()
    while time.perf_counter() - began < deadline_s:
        if revoked.is_revoked(jti):
            return time.perf_counter() - began
        await asyncio.sleep(0.005)
    return None


async def test_the_revoking_process_refuses_the_token_at_once(processes: Callable[[], RevokedTokens]):
    revoking = await started(processes())
    jti, exp = a_token()

    await revoking.revoke(jti, exp)

    assert revoking.is_revoked(jti)


async def test_a_revocation_is_seen_by_another_process_within_a_second(processes: Callable[[], RevokedTokens]):
    revoking, other = await started(processes()), await started(processes())
    jti, exp = a_token()
    assert not other.is_revoked(jti)

    await revoking.revoke(jti, exp)
    seen = await seen_after(other, jti, SEEN_WITHIN_S)

    assert seen is not None, "the other process did not see the revocation within a second"
    assert seen < SEEN_WITHIN_S


async def test_a_process_started_later_reads_the_earlier_revocations(processes: Callable[[], RevokedTokens]):
    revoking = await started(processes())
    tokens = [a_token() for _ in range(3)]
    for jti, exp in tokens:
        await revoking.revoke(jti, exp)

    later = await started(processes())

    assert all(later.is_revoked(jti) for jti, _ in tokens)
    assert not later.is_revoked(uuid.uuid4().hex)


async def test_a_token_not_revoked_is_not_refused(processes: Callable[[], RevokedTokens]):
    revoking = await started(processes())
    await revoking.revoke(*a_token())

    assert not revoking.is_revoked(uuid.uuid4().hex)


async def test_trimming_drops_entries_older_than_a_token_life_and_keeps_recent_ones(
    processes: Callable[[], RevokedTokens], redis: Redis, users: UserSettings
):
    stream = revoked_tokens(users.key_prefix)
    ancient_ms = int((time.time() - TOKEN_LIFE_S - 60) * 1000)
    await redis.xadd(stream, {"jti": "ancient", "exp": str(ancient_ms // 1000 + TOKEN_LIFE_S)}, id=f"{ancient_ms}-0")
    revoking = await started(processes())
    recent = [a_token() for _ in range(2)]

    for jti, exp in recent:
        await revoking.revoke(jti, exp)

    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(stream))
    kept = [fields[b"jti"].decode() for _, fields in entries]
    assert kept == [jti for jti, _ in recent]


async def test_a_revocation_past_the_tokens_life_and_leeway_is_forgotten(redis: Redis, users: UserSettings):
    now = [time.time()]
    revoked = RevokedTokens(redis, users, TOKEN_LIFE_S, leeway_s=5, clock=lambda: now[0])
    jti, exp = uuid.uuid4().hex, int(now[0]) + 60
    await revoked.revoke(jti, exp)

    now[0] = exp + 4
    within_leeway = revoked.is_revoked(jti)
    now[0] = exp + 6
    past_leeway = revoked.is_revoked(jti)

    assert within_leeway is True
    assert past_leeway is False
    assert len(revoked) == 0


async def test_pruning_drops_only_the_revocations_past_their_life(redis: Redis, users: UserSettings):
    now = [time.time()]
    revoked = RevokedTokens(redis, users, TOKEN_LIFE_S, clock=lambda: now[0])
    for n in range(10):
        await revoked.revoke(f"short-{n}", int(now[0]) + 10)
    await revoked.revoke("long", int(now[0]) + 1_000)
    now[0] += 20

    dropped = revoked.prune()

    assert dropped == 10
    assert len(revoked) == 1
    assert revoked.is_revoked("long")


class CuttableLink:
    """A TCP relay to Redis that the test can cut and restore (the shared Redis is never stopped)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target_reader, target_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, target_writer]
        await asyncio.gather(_pipe(reader, target_writer), _pipe(target_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65_536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_the_tail_survives_redis_out_of_reach_and_resumes_after_it(
    settings: Settings, redis: Redis, users: UserSettings
):
    link = CuttableLink(settings.redis.host, settings.redis.port)
    await link.up()
    client = create_redis(settings.redis.model_copy(update={"port": link.port}), retries=0)
    follower = RevokedTokens(client, users, TOKEN_LIFE_S)
    revoking = RevokedTokens(redis, users, TOKEN_LIFE_S)
    await follower.start()
    try:
        await link.cut()
        jti, exp = a_token()
        await revoking.revoke(jti, exp)
        await asyncio.sleep(1.0)  # the follower fails a few reads meanwhile
        missed_while_cut = follower.is_revoked(jti)

        await link.up()
        seen = await seen_after(follower, jti, deadline_s=5.0)

        assert missed_while_cut is False
        assert seen is not None, "the follower did not resume after Redis came back"
    finally:
        await follower.stop()
        await client.aclose()


async def test_stopping_never_waits_on_a_cancelled_read(settings: Settings, redis: Redis, users: UserSettings):
    """A follower stopped at any moment of its XREAD ends its stop() within the bound, however the
    cancel lands (a read cancelled as its reply arrives once held a shutdown for good)."""
    quick = users.model_copy(update={"revocation_poll_block_ms": 1})
    bound_s = STOP_WITHIN_S + 1.0
    slowest = 0.0
    for _ in range(STOP_CYCLES):
        follower = RevokedTokens(redis, quick, TOKEN_LIFE_S)
        await follower.start()
        await asyncio.sleep(random.random() * 0.004)
        began = time.perf_counter()
        await asyncio.wait_for(follower.stop(), bound_s)
        slowest = max(slowest, time.perf_counter() - began)

    assert slowest <= bound_s
