"""Aggregate versions for events decided at the API (admin commands), sequenced in Redis."""

from __future__ import annotations

from infra.redis import LuaScripts


async def reserve_versions(scripts: LuaScripts, counter_key: str, count: int, floor: int) -> int:
    """Reserve ``count`` consecutive versions above ``floor``; return the first."""
    last = int(await scripts["aggregate_versions"](keys=[counter_key], args=[count, floor]))
    return last - count + 1
