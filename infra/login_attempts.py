"""Login lockout per identifier on Redis (``lua/login_failure.lua``, which states the rule).

The identifier is the blind index of the mobile or email a login names, so the counter says
nothing of whom it counts, and it is counted whether or not an account has that identifier (a
lock tells an attacker nothing about which accounts exist). A successful login does not reset
the count: an attacker who owns one account cannot interleave it to keep guessing another's.
"""

from __future__ import annotations

from redis.asyncio import Redis

from infra.redis import REDIS_ERRORS, LuaScripts
from infra.redis_keys import login_failures
from infra.revocations import SessionStoreUnavailable
from infra.settings import UserSettings

SCRIPT = "login_failure"
ASK, RECORD = 0, 1


class LoginAttempts:
    """Failed logins per identifier; Redis errors are ``SessionStoreUnavailable``."""

    def __init__(self, redis: Redis, scripts: LuaScripts, settings: UserSettings) -> None:
        self._redis, self._scripts, self._settings = redis, scripts, settings

    async def retry_after_ms(self, identifier_blind: str) -> int | None:
        """Milliseconds until the identifier's lock ends; None when it is not locked."""
        return await self._run(identifier_blind, ASK)

    async def record_failure(self, identifier_blind: str) -> int | None:
        """Count one failed login; the lock's milliseconds left when the identifier is locked after it."""
        return await self._run(identifier_blind, RECORD)

    async def _run(self, identifier_blind: str, record: int) -> int | None:
        key = login_failures(self._settings.key_prefix, identifier_blind)
        args = [self._settings.login_failures_max, self._settings.login_window_ms, record]
        try:
            retry_after_ms = int(await self._scripts[SCRIPT](keys=[key], args=args, client=self._redis))
        except REDIS_ERRORS as exc:
            raise SessionStoreUnavailable(repr(exc)) from exc
        return retry_after_ms or None
