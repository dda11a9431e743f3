"""The purchase path's small Redis stores outside the programs' slots: idempotency keys, each
user's index of their orders, the ticket buyers the user projector keeps; and gene order numbers.
Adapters of the ports in ``commands/order.py``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from commands.order import PlacedOrder, Remembered
from infra.ids import IdService
from infra.postgres.routing import ShardLayout
from infra.redis_keys import idempotency_key, order_decision, user_order, user_ticket_buyers
from infra.settings import Settings


class RedisIdempotencyKeys:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._prefix = settings.orders.key_prefix
        self._ttl_s = settings.orders.idempotency_ttl_s

    async def claim(self, user_id: int, key: str, remembered: Remembered) -> Remembered | None:
        value = orjson.dumps(
            {"o": str(remembered.order_number), "f": remembered.fingerprint, "p": str(remembered.program_id)}
        )
        # SET NX GET: one round trip, and of two concurrent requests with one key only one wins.
        earlier = await self._redis.set(
            idempotency_key(self._prefix, user_id, key), value, nx=True, get=True, ex=self._ttl_s
        )
        if earlier is None:
            return None
        assert isinstance(earlier, bytes)
        stored = orjson.loads(earlier)
        return Remembered(int(stored["o"]), stored["f"], int(stored["p"]))

    async def forget(self, user_id: int, key: str) -> None:
        await self._redis.delete(idempotency_key(self._prefix, user_id, key))


class RedisOrderIndex:
    """Each user's orders, by number: what the order view needs before (and besides) the decision."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._prefix = settings.orders.key_prefix
        self._ttl_s = settings.orders.view_ttl_s

    async def remember(self, user_id: int, order_number: int, placed: PlacedOrder) -> None:
        value = orjson.dumps(
            {"p": str(placed.program_id), "s": str(placed.show_time_id), "at": placed.requested_at.isoformat()}
        )
        await self._redis.set(user_order(self._prefix, user_id, order_number), value, ex=self._ttl_s)

    async def placed(self, user_id: int, order_number: int) -> PlacedOrder | None:
        """One of the user's orders; None for an order of someone else, or unknown."""
        raw = await self._redis.get(user_order(self._prefix, user_id, order_number))
        if raw is None:
            return None
        stored = orjson.loads(raw)
        return PlacedOrder(int(stored["p"]), int(stored["s"]), datetime.fromisoformat(stored["at"]))


class RedisTicketBuyers:
    """The user's ticket buyers as the user projector keeps them in Redis (never Postgres)."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._prefix = settings.users.key_prefix

    async def documents(self, user_id: int, ticket_buyer_ids: Sequence[int]) -> Mapping[int, str]:
        found = await self._redis.hmget(user_ticket_buyers(self._prefix, user_id), [str(i) for i in ticket_buyer_ids])
        return {
            i: blind.decode() if isinstance(blind, bytes) else blind
            for i, blind in zip(ticket_buyer_ids, found, strict=True)
            if blind is not None
        }


class GeneOrderNumbers:
    def __init__(self, ids: IdService, layout: ShardLayout) -> None:
        self._ids = ids
        self._layout = layout

    def next_for(self, user_id: int) -> int:
        return self._ids.next_order_number(self._layout.gene_of_user(user_id))


class RedisDecisions:
    """The allocator's decisions, in the programs' slots (lua/order_reserve.lua, lua/order_release.lua)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def decision(self, program_id: int, order_number: int) -> dict[str, Any] | None:
        """The decision as the scripts stored it (JSON); None before the allocator decided."""
        raw = await self._redis.get(order_decision(program_id, order_number))
        if raw is None:
            return None
        decided: dict[str, Any] = orjson.loads(raw)
        return decided

    async def status_of(self, program_id: int, order_number: int) -> str | None:
        decided = await self.decision(program_id, order_number)
        return None if decided is None else str(decided["status"])
