"""Redis client with explicit timeouts, and the Lua script registry.

redis-py 8 defaults to a 5 s socket timeout and RESP3; every timeout here is a
named setting. Blocking reads (XREADGROUP BLOCK) must use ``blocking_client``.
"""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from infra.settings import REPO_ROOT, RedisSettings

LUA_DIR = REPO_ROOT / "lua"


def create_redis(settings: RedisSettings) -> Redis:
    return Redis(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=settings.connect_timeout_s,
        max_connections=settings.max_connections,
        health_check_interval=settings.health_check_interval_s,
    )


def blocking_client(settings: RedisSettings) -> Redis:
    """A client for blocking reads: no socket timeout, so BLOCK is not cut short."""
    return Redis(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        socket_timeout=None,
        socket_connect_timeout=settings.connect_timeout_s,
    )


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
