"""Revoked access tokens: a Redis Stream every API process tails into a set of its own.

A signed-in request must not pay a Redis round trip to learn whether its token was revoked, so
each process keeps the revoked token ids (jti → exp) in memory and asks only that. ``revoke``
appends to the stream ``revoked_tokens`` (``infra/redis_keys.py``) and adds to the local set at
once; every other process reads the entry with ``XREAD BLOCK`` within about
``revocation_poll_block_ms``. A stream rather than PUB/SUB: a reader that lost Redis resumes after
the last entry it saw, and a process that starts later reads the whole stream first.

Nothing is kept longer than a token lives: the stream is trimmed (``MINID``) to the entries
younger than the longest token life, and the local set forgets a token once it is past its
``exp`` plus the verification leeway (it no longer verifies, revoked or not). An entry trimmed
before a reader saw it named a token that had expired already, so resuming is always safe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import structlog
from redis.asyncio import Redis

from commands.ports import Unavailable
from infra.background import cancel_and_wait
from infra.redis import REDIS_ERRORS
from infra.redis_keys import revoked_tokens
from infra.settings import UserSettings

log = structlog.get_logger(__name__)

JTI_FIELD, EXP_FIELD = b"jti", b"exp"
STREAM_START = "0-0"
# Entries read per round trip, at start and while tailing (a page of the stream, not a limit).
READ_COUNT = 1_000
# The tail's wait after a Redis error, doubled per failure up to the maximum: a reader never
# gives up, and an outage costs Redis one attempt per second per process at most.
RETRY_INITIAL_S, RETRY_MAX_S = 0.1, 1.0
# How often the local set drops tokens past their life (a scan of the whole set, ~10 ms per 100k).
PRUNE_INTERVAL_S = 60.0
# A server that hangs mid-XREAD shows up as asyncio's timeout (see _read).
FOLLOW_ERRORS: tuple[type[BaseException], ...] = (*REDIS_ERRORS, TimeoutError)

Revocation = tuple[bytes, str | None, int | None]
"""A stream entry: its id, the token id and its exp (None, None when the entry is malformed)."""


class SessionStoreUnavailable(Unavailable):
    """Redis, which holds revocations and login failures, did not answer; the client may retry."""

    code = "SESSION_STORE_UNAVAILABLE"
    message = "the session store cannot answer now; retry"


class RevokedTokens:
    """The revoked token ids, as this process knows them: ``is_revoked`` costs no I/O."""

    def __init__(
        self,
        redis: Redis,
        settings: UserSettings,
        max_token_life_s: int,
        *,
        leeway_s: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``max_token_life_s``: the longest life of an access token (``TokenSettings.access_token_ttl_s``);
        ``leeway_s``: how long past ``exp`` a token still verifies (``TokenSettings.leeway_s``)."""
        self._redis = redis
        self._stream = revoked_tokens(settings.key_prefix)
        self._block_ms = settings.revocation_poll_block_ms
        self._keep_s = max_token_life_s + leeway_s
        self._leeway_s = leeway_s
        self._clock = clock
        self._revoked: dict[str, int] = {}
        self._last_id: bytes | str = STREAM_START
        self._next_prune = 0.0
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._revoked)

    async def start(self) -> None:
        """Read the whole stream, then follow it in a background task. Without Redis it starts
        empty and the task reads the stream once Redis answers."""
        try:
            await self._load()
        except REDIS_ERRORS as exc:
            log.warning("revocations.unreachable", error=repr(exc))
        self._task = asyncio.create_task(self._follow(), name="revoked-tokens")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def revoke(self, jti: str, exp: int) -> None:
        """Refuse token ``jti`` (valid until ``exp``, unix seconds) here at once and in every process
        within a moment; ``SessionStoreUnavailable`` when Redis cannot take it."""
        self._revoked[jti] = exp
        min_id = max(0, int((self._clock() - self._keep_s) * 1000))
        try:
            await self._redis.xadd(self._stream, {JTI_FIELD: jti, EXP_FIELD: str(exp)}, minid=min_id, approximate=False)
        except REDIS_ERRORS as exc:
            raise SessionStoreUnavailable(repr(exc)) from exc

    def is_revoked(self, jti: str) -> bool:
        """Whether ``jti`` was revoked, as far as this process has read; no I/O."""
        exp = self._revoked.get(jti)
        if exp is None:
            return False
        if exp + self._leeway_s < self._clock():
            del self._revoked[jti]  # past its life: it no longer verifies, revoked or not
            return False
        return True

    def prune(self) -> int:
        """Forget the tokens past their life; how many were dropped."""
        horizon = self._clock() - self._leeway_s
        expired = [jti for jti, exp in self._revoked.items() if exp < horizon]
        for jti in expired:
            del self._revoked[jti]
        self._next_prune = self._clock() + PRUNE_INTERVAL_S
        return len(expired)

    async def _load(self) -> None:
        start: bytes | str = "-"
        while True:
            entries = cast(list[tuple[bytes, Any]], await self._redis.xrange(self._stream, min=start, count=READ_COUNT))
            self._apply(_decoded(entries))
            if len(entries) < READ_COUNT:
                return
            start = b"(" + entries[-1][0]

    async def _follow(self) -> None:
        delay = RETRY_INITIAL_S
        while True:
            try:
                await self._read()
                delay = RETRY_INITIAL_S
            except FOLLOW_ERRORS as exc:
                log.warning("revocations.unreachable", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            if self._clock() >= self._next_prune:
                self.prune()

    async def _read(self) -> None:
        # The pooled client's socket timeout (seconds) is above BLOCK (at most a second); a hung
        # server is caught here all the same (asyncio.timeout rather than wait_for, which on 3.11
        # drops a cancel that lands as the reply arrives).
        async with asyncio.timeout(self._block_ms / 1000 + RETRY_MAX_S):
            reply = await self._redis.xread({self._stream: self._last_id}, count=READ_COUNT, block=self._block_ms)
        self._apply(_decoded(entry for _, entries in _streams(reply) for entry in entries))

    def _apply(self, entries: Iterable[Revocation]) -> None:
        for entry_id, jti, exp in entries:
            self._last_id = entry_id
            if jti is None or exp is None:
                log.warning("revocations.entry_ignored", entry=entry_id)
                continue
            self._revoked[jti] = exp


def _streams(reply: Any) -> Iterable[tuple[Any, list[Any]]]:
    """(stream, entries) of an XREAD reply, in RESP2 (a list of [stream, entries]) or RESP3 (a map) form."""
    if not reply:
        return ()
    return reply.items() if isinstance(reply, dict) else ((s, e) for s, e in reply)


def _decoded(entries: Iterable[Any]) -> Iterable[Revocation]:
    """(id, jti, exp) of each entry; (id, None, None) for one that does not carry both fields."""
    for entry_id, raw in entries:
        fields = dict(raw)
        jti, exp = fields.get(JTI_FIELD), fields.get(EXP_FIELD)
        if not jti or exp is None or not exp.isdigit():
            yield entry_id, None, None
        else:
            yield entry_id, jti.decode(), int(exp)
