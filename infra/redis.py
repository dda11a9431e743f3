"""Redis client with explicit timeouts, and the Lua script registry.

redis-py 8 defaults to a 5 s socket timeout and RESP3; every timeout here is a
named setting. Blocking reads (XREADGROUP BLOCK) must use ``blocking_client``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from infra.settings import REPO_ROOT, RedisSettings

LUA_DIR = REPO_ROOT / "lua"
DEFAULT_RETRIES = 10
"""redis-py 8's own default for a client: 10 retries of a connection or timeout error ..."""


def default_backoff() -> ExponentialWithJitterBackoff:
    """... with jittered exponential backoff from 10 ms up to 1 s (redis-py 8's default)."""
    return ExponentialWithJitterBackoff(base=0.01, cap=1)

# What Redis being unreachable, overloaded or full looks like to a client that can do without it.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)


def create_redis(settings: RedisSettings, *, retries: int | None = None) -> Redis:
    """A pooled client. ``retries`` replaces redis-py 8's default of 10 retries with backoff
    (about 5 s before a refused connection is reported) for callers that can do without Redis.

    The pool blocks: under a burst, a command waits up to ``socket_timeout_s`` for one of the
    ``max_connections`` connections instead of failing at once (redis-py's plain pool raises
    ``MaxConnectionsError`` the moment they are all in use: 74 of 200 simultaneous registrations
    on one process failed that way)."""
    # A pool given to the client keeps its own connection arguments: the retry redis-py gives the
    # connections of a pool it makes itself must be passed here, or a connection closed by a Redis
    # restart fails its next command instead of reconnecting.
    retry = Retry(NoBackoff(), retries) if retries is not None else Retry(default_backoff(), DEFAULT_RETRIES)
    pool = BlockingConnectionPool(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=settings.connect_timeout_s,
        max_connections=settings.max_connections,
        timeout=settings.socket_timeout_s,
        health_check_interval=settings.health_check_interval_s,
        retry=retry,
    )
    return Redis.from_pool(pool)


def blocking_client(settings: RedisSettings, *, retries: int | None = None) -> Redis:
    """A client for blocking reads: no socket timeout, so BLOCK is not cut short."""
    client = Redis(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        socket_timeout=None,
        socket_connect_timeout=settings.connect_timeout_s,
    )
    if retries is not None:
        client.set_retry(Retry(NoBackoff(), retries))
    return client


@cache
def lua_source(name: str) -> str:
    """The text of ``lua/<name>.lua``, read once per process."""
    return (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")


def lua_script(redis: Redis, name: str) -> AsyncScript:
    """One script of ``lua/`` on ``redis``, for adapters that are handed a bare client."""
    return redis.register_script(lua_source(name))


class LuaScripts:
    """Every script in ``lua/``, registered once and called by SHA (EVALSHA, reloaded on NOSCRIPT)."""

    def __init__(self, redis: Redis, directory: Path = LUA_DIR):
        self._scripts: dict[str, AsyncScript] = {
            path.stem: redis.register_script(path.read_text(encoding="utf-8"))
            for path in sorted(directory.glob("*.lua"))
        }

    def __getitem__(self, name: str) -> AsyncScript:
        return self._scripts[name]

    def names(self) -> list[str]:
        return list(self._scripts)

    async def preload(self, redis: Redis) -> None:
        """Load every script now, so a bad script fails at start rather than on first use."""
        for script in self._scripts.values():
            await redis.script_load(script.script)
