"""The purchase path's small Redis stores outside the programs' slots: idempotency keys, each
user's index of their orders, the ticket buyers the user projector keeps; and gene order numbers.
Adapters of the ports in ``commands/order.py``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from aggregates.errors import RateLimited
from aggregates.pay_bill import PayBill
from commands.order import PlacedOrder, Remembered
from commands.ports import Unavailable
from infra.ids import IdService
from infra.metrics import RATE_LIMITED
from infra.postgres.routing import ShardLayout
from infra.redis import REDIS_ERRORS, LuaScripts
from infra.redis_keys import idempotency_key as idempotency_key_of
from infra.redis_keys import (
    open_bills,
    order_decision,
    order_member,
    pay_bill_marker,
    user_order,
    user_rate_limit_window,
    user_ticket_buyers,
)
from infra.settings import Settings

ORDERS_LIMIT_GROUP = "orders"
"""The route group of the order rate limit (its counter's key and its metric label)."""
ADMIT_LIMITED = 0
ADMIT_EARLIER = 2


class OrderStoreUnavailable(Unavailable):
    """Redis, which admits order requests, did not answer; nothing was appended, the client may retry."""

    code = "ORDER_STORE_UNAVAILABLE"
    message = "the order store cannot answer now; retry"


class RedisOrderAdmission:
    """Admits an order request in one round trip (``lua/order_admit.lua``): the user's order rate
    limit, the Idempotency-Key and the user's index of their orders, all under the user's hash tag."""

    def __init__(self, redis: Redis, scripts: LuaScripts, settings: Settings) -> None:
        self._redis = redis
        self._admit = scripts["order_admit"]
        self._prefix = settings.orders.key_prefix
        self._limits = settings.rate_limits
        self._view_ttl_s = settings.orders.view_ttl_s
        self._idempotency_ttl_s = settings.orders.idempotency_ttl_s

    async def admit(
        self, user_id: int, placed: PlacedOrder, remembered: Remembered, idempotency_key: str | None
    ) -> Remembered | None:
        limits = self._limits
        keys = [
            user_rate_limit_window(limits.key_prefix, user_id, ORDERS_LIMIT_GROUP),
            user_order(self._prefix, user_id, remembered.order_number),
        ]
        args: list[str | int | bytes] = [
            limits.order_limit,
            limits.order_window_ms,
            orjson.dumps(
                {"p": str(placed.program_id), "s": str(placed.show_time_id), "at": placed.requested_at.isoformat()}
            ),
            self._view_ttl_s,
        ]
        if idempotency_key is not None:
            keys.append(idempotency_key_of(self._prefix, user_id, idempotency_key))
            args += [
                orjson.dumps(
                    {"o": str(remembered.order_number), "f": remembered.fingerprint, "p": str(remembered.program_id)}
                ),
                self._idempotency_ttl_s,
            ]
        try:
            answer = await self._admit(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            raise OrderStoreUnavailable(repr(exc)) from exc
        if answer[0] == ADMIT_LIMITED:
            RATE_LIMITED.labels(ORDERS_LIMIT_GROUP).inc()
            raise RateLimited(
                f"more than {limits.order_limit} requests in {limits.order_window_ms} ms from this user; retry later",
                retry_after_s=max(1, math.ceil(int(answer[1]) / 1000)),
                details={"limit": limits.order_limit, "windowMs": limits.order_window_ms},
            )
        if answer[0] == ADMIT_EARLIER:
            stored = orjson.loads(answer[1])
            return Remembered(int(stored["o"]), stored["f"], int(stored["p"]))
        return None

    async def withdraw(self, user_id: int, order_number: int, idempotency_key: str | None) -> None:
        keys = [user_order(self._prefix, user_id, order_number)]
        if idempotency_key is not None:
            keys.append(idempotency_key_of(self._prefix, user_id, idempotency_key))
        await self._redis.delete(*keys)


class RedisOrderIndex:
    """Each user's orders, by number (written by ``RedisOrderAdmission``): what the order view needs
    before (and besides) the decision."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._prefix = settings.orders.key_prefix

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


class RedisPayBills:
    """``commands.payment.BillMarkers``: an order's open bill in its program's slot (read by the
    lifecycle before an expiry and by the order view) and in the reconciler's schedule."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._prefix = settings.orders.key_prefix
        self._ttl_s = settings.orders.view_ttl_s
        self._reconcile_after_ms = int(settings.payments.reconcile_after_s * 1000)

    async def mark(self, bill: PayBill, decided_at: datetime) -> None:
        marker = orjson.dumps(
            {
                "payBillId": str(bill.pay_bill_id),
                "channel": bill.channel,
                "amount": f"{bill.amount:.2f}",
                "createdAt": bill.created_on.isoformat(),
            }
        )
        member = order_member(bill.order_number, bill.program_id, bill.user_id)
        due_ms = int(decided_at.timestamp() * 1000) + self._reconcile_after_ms
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(pay_bill_marker(bill.program_id, bill.order_number), marker, ex=self._ttl_s)
            pipe.zadd(open_bills(self._prefix), {member: due_ms}, nx=True)
            await pipe.execute()

    async def channel_of(self, program_id: int, order_number: int) -> str | None:
        raw = await self._redis.get(pay_bill_marker(program_id, order_number))
        return None if raw is None else str(orjson.loads(raw)["channel"])
