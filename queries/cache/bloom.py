"""A Bloom filter kept as a Redis bitmap: "absent" is certain, "present" is likely.

A filter that was never built answers ``UNKNOWN`` rather than "absent", so a lost or
resized filter makes callers look further instead of denying everything. Building happens
beside the live filter and ends by OR-ing into it (or renaming into place), so members
added while a build runs are never lost. Bit offsets come from double hashing of one
BLAKE2b digest (Kirsch–Mitzenmacher); the Lua scripts only set the bits they are given.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from infra.redis import lua_script


class Membership(enum.Enum):
    ABSENT = "absent"
    MAYBE_PRESENT = "maybe_present"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class BloomShape:
    bits: int
    hashes: int

    def offsets(self, member: bytes) -> list[int]:
        digest = hashlib.blake2b(member, digest_size=16).digest()
        h1 = int.from_bytes(digest[:8], "big")
        h2 = int.from_bytes(digest[8:], "big") | 1  # odd: the k offsets do not collapse onto a cycle
        return [(h1 + i * h2) % self.bits for i in range(self.hashes)]


@dataclass(frozen=True)
class BloomKeys:
    live: str
    building: str
    builder: str


class BloomFilter:
    def __init__(self, redis: Redis, shape: BloomShape, keys: BloomKeys):
        self._redis = redis
        self.shape = shape
        self.keys = keys
        self._add = lua_script(redis, "bloom_add")
        self._start = lua_script(redis, "bloom_build_start")
        self._finish = lua_script(redis, "bloom_build_finish")

    async def check(self, member: bytes) -> Membership:
        """One round trip: does the filter exist, and are all of the member's bits set."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.keys.live)
            pipe.execute_command("BITFIELD_RO", self.keys.live, *_bitfield_ops("GET", self.shape.offsets(member)))
            exists, bits = await pipe.execute()
        if not exists:
            return Membership.UNKNOWN
        return Membership.MAYBE_PRESENT if all(bits) else Membership.ABSENT

    async def add(self, member: bytes) -> bool:
        """Add ``member``; False when no filter exists yet (the next build will find it in the store)."""
        live, building = await self._add(keys=[self.keys.live, self.keys.building], args=self.shape.offsets(member))
        return bool(live or building)

    async def add_many(self, members: Sequence[bytes]) -> None:
        """Add ``members`` in one round trip (a pipeline of ``add``)."""
        if not members:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for member in members:
                await self._add(keys=[self.keys.live, self.keys.building], args=self.shape.offsets(member), client=pipe)
            await pipe.execute()

    async def exists(self) -> bool:
        return bool(await self._redis.exists(self.keys.live))

    async def build(self, members: AsyncIterable[Sequence[bytes]], batch: int, ttl_ms: int) -> int | None:
        """Add every member, then make the result live; None when another build is under way.

        Raises ``BloomBuildLost`` when the build's keys expired before it finished (no progress
        for ``ttl_ms``); nothing is made live then.
        """
        token = uuid.uuid4().hex
        if not await self._start(keys=[self.keys.building, self.keys.builder], args=[token, ttl_ms]):
            return None
        added = 0
        async for chunk in members:
            for first in range(0, len(chunk), batch):
                part = chunk[first : first + batch]
                await self._set_bits(part, ttl_ms)
                added += len(part)
        if not await self._finish(keys=[self.keys.live, self.keys.building, self.keys.builder], args=[token]):
            raise BloomBuildLost(f"the build of {self.keys.live} expired before it finished")
        return added

    async def _set_bits(self, members: Sequence[bytes], ttl_ms: int) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.execute_command("BITFIELD", self.keys.building, *_bitfield_ops("SET", self.shape.offsets(member)))
            pipe.pexpire(self.keys.building, ttl_ms)
            pipe.pexpire(self.keys.builder, ttl_ms)
            await pipe.execute()


class BloomBuildLost(Exception):
    pass


def _bitfield_ops(op: str, offsets: list[int]) -> list[str | int]:
    ops: list[str | int] = []
    for offset in offsets:
        ops += [op, "u1", offset] if op == "GET" else [op, "u1", offset, 1]
    return ops
