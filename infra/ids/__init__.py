"""Ids for the whole system: order numbers that carry the buyer's gene, and entity ids.

    async with IdService.start(redis, scripts, settings.ids) as ids:
        user_id = ids.next_entity_id()
        order_number = ids.next_order_number(gene)

Both are 63-bit snowflakes (``infra.ids.layout``) stamped with a worker id this process
leases from Redis (``infra.ids.lease``); the sequence and clock rules are in
``infra.ids.generator``. Every refusal is an ``IdRefused``: no id rather than a duplicate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from infra.ids.errors import (
    ClockAheadOfLease,
    ClockBehindHighWater,
    ClockMovedBackwards,
    IdRefused,
    WorkerIdsExhausted,
    WorkerLeaseLost,
)
from infra.ids.generator import Clock, IdGenerator, Sleep, wall_clock_ms
from infra.ids.layout import ENTITY_ID, EPOCH_MS, GENE_BITS, ORDER_NUMBER
from infra.ids.lease import Monotonic, WorkerLease
from infra.redis import LuaScripts
from infra.settings import IdSettings

__all__ = [
    "GENE_BITS",
    "ClockAheadOfLease",
    "ClockBehindHighWater",
    "ClockMovedBackwards",
    "IdRefused",
    "IdService",
    "WorkerIdsExhausted",
    "WorkerLeaseLost",
]

log = structlog.get_logger(__name__)


class IdService:
    """Issues entity ids and order numbers while this process holds its worker-id lease."""

    def __init__(self, lease: WorkerLease, settings: IdSettings, clock: Clock, sleep: Sleep):
        self._lease = lease
        # Without an earlier holder the floor is just before the epoch: any id is later.
        after_ms = max(lease.previous_high_water_ms, EPOCH_MS - 1)
        self._generators = {
            layout: IdGenerator(
                layout,
                lease.worker_id,
                max_step_back_ms=settings.max_clock_step_back_ms,
                issued_after_ms=after_ms,
                clock=clock,
                sleep=sleep,
            )
            for layout in (ENTITY_ID, ORDER_NUMBER)
        }
        self._entities = self._generators[ENTITY_ID]
        self._orders = self._generators[ORDER_NUMBER]

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        redis: Redis,
        scripts: LuaScripts,
        settings: IdSettings,
        *,
        clock: Clock = wall_clock_ms,
        sleep: Sleep = time.sleep,
        monotonic: Monotonic = time.monotonic,
    ) -> AsyncIterator[IdService]:
        """Lease a worker id, keep it renewed while the block runs, release it afterwards."""
        lease = await WorkerLease.acquire(redis, scripts, settings, clock=clock, monotonic=monotonic)
        service = cls(lease, settings, clock, sleep)
        renewals: asyncio.Task[None] | None = None
        try:
            await lease.wait_out_previous_holder()
            service._cover_until(lease.high_water_ms)
            renewals = asyncio.create_task(lease.keep_renewed(service._cover_until))
            yield service
        finally:
            if renewals is not None:
                lease.stop_renewals()
                # wait, not await: cancelling this task must not cancel a renewal mid-command.
                await asyncio.wait([renewals])
            await service._release()

    @property
    def worker_id(self) -> int:
        return self._lease.worker_id

    def next_entity_id(self) -> int:
        """A new id for a user, program, seat, ticket buyer, bill or any other entity."""
        self._lease.ensure_held()
        return self._entities.next()

    def next_order_number(self, gene: int) -> int:
        """A new order number whose low ``GENE_BITS`` bits are ``gene`` (the buyer's gene)."""
        self._lease.ensure_held()
        return self._orders.next(gene)

    def _cover_until(self, high_water_ms: int) -> None:
        for generator in self._generators.values():
            generator.cover_until(high_water_ms)

    async def _release(self) -> None:
        last_issued_ms = max(generator.last_ms for generator in self._generators.values())
        try:
            await self._lease.release(last_issued_ms)
        except RedisError as error:
            # The lease lapses by itself; its mark stays at the claimed high-water, which is safe.
            log.warning("worker id not released", worker_id=self.worker_id, error=str(error))
