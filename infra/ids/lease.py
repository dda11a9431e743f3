"""Worker ids leased from Redis, so that two live processes never stamp ids with the same one.

A lease is the key ``{tag}:worker:<n>`` holding a random owner token, with a TTL, renewed
every third of the TTL while the token still owns it. The holder trusts its lease only
until a local deadline on the monotonic clock: the start of the last successful renewal +
TTL - safety margin. Past that (Redis unreachable, the process paused) or once a renewal
finds another owner, the lease is lost for good and ``ensure_held`` raises.

Each worker id also has a high-water mark ``{tag}:high-water:<n>``: the latest millisecond
its holder may stamp ids with (now + TTL at each renewal, by the holder's clock). A new
holder stamps only later milliseconds, so a restart after the clock stepped back cannot
repeat an id. On clean release the mark drops to the last millisecond actually stamped, so
the next holder rarely has anything to wait out.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from infra.ids.errors import ClockBehindHighWater, WorkerIdsExhausted, WorkerLeaseLost
from infra.ids.generator import Clock, wall_clock_ms
from infra.ids.layout import WORKER_COUNT
from infra.redis import LuaScripts
from infra.settings import IdSettings

log = structlog.get_logger(__name__)

Monotonic = Callable[[], float]


def lease_key(tag: str, worker_id: int) -> str:
    return f"{{{tag}}}:worker:{worker_id}"


def high_water_key(tag: str, worker_id: int) -> str:
    return f"{{{tag}}}:high-water:{worker_id}"


class WorkerLease:
    """One worker id, held by this process while its Redis lease lasts."""

    def __init__(
        self,
        redis: Redis,
        scripts: LuaScripts,
        settings: IdSettings,
        worker_id: int,
        token: str,
        previous_high_water_ms: int,
        clock: Clock,
        monotonic: Monotonic,
    ):
        self.worker_id = worker_id
        self.previous_high_water_ms = previous_high_water_ms
        self.high_water_ms = previous_high_water_ms
        self._redis = redis
        self._scripts = scripts
        self._settings = settings
        self._token = token
        self._clock = clock
        self._monotonic = monotonic
        self._keys = [lease_key(settings.key_tag, worker_id), high_water_key(settings.key_tag, worker_id)]
        self._trusted_until = float("-inf")
        self._lost_because = ""
        self._renewals_stopped = asyncio.Event()

    @classmethod
    async def acquire(
        cls,
        redis: Redis,
        scripts: LuaScripts,
        settings: IdSettings,
        *,
        clock: Clock = wall_clock_ms,
        monotonic: Monotonic = time.monotonic,
    ) -> WorkerLease:
        """Lease the first free worker id; ``WorkerIdsExhausted`` when all are taken."""
        token = secrets.token_hex(16)
        tag = settings.key_tag
        keys = [lease_key(tag, n) for n in range(WORKER_COUNT)] + [high_water_key(tag, n) for n in range(WORKER_COUNT)]
        started = monotonic()
        worker_id, previous, high_water = await scripts["worker_id_lease"](
            keys=keys, args=[token, settings.lease_ttl_ms, clock()], client=redis
        )
        if worker_id < 0:
            raise WorkerIdsExhausted(f"all {WORKER_COUNT} worker ids under {{{tag}}} are leased")
        lease = cls(redis, scripts, settings, int(worker_id), token, int(previous), clock, monotonic)
        lease._renewed(started, int(high_water))
        log.info("worker id leased", worker_id=lease.worker_id, previous_high_water_ms=lease.previous_high_water_ms)
        return lease

    def ensure_held(self) -> None:
        """Raise ``WorkerLeaseLost`` unless this process can be sure it still holds the worker id."""
        if self._lost_because:
            raise WorkerLeaseLost(f"worker id {self.worker_id}: {self._lost_because}")
        if self._monotonic() > self._trusted_until:
            raise WorkerLeaseLost(f"worker id {self.worker_id}: not renewed in time, the lease may have lapsed")

    async def wait_out_previous_holder(self) -> None:
        """Wait until the clock passes the previous holder's high-water mark.

        Raises ``ClockBehindHighWater`` when the clock is further behind it than
        ``max_high_water_wait_ms``: the previous holder may have stamped ids up to it.
        """
        waited = False
        while (behind := self.previous_high_water_ms - self._clock()) >= 0:
            if behind > self._settings.max_high_water_wait_ms:
                raise ClockBehindHighWater(
                    f"worker id {self.worker_id}: the clock reads {behind} ms behind the previous holder's "
                    f"high-water mark; waiting more than {self._settings.max_high_water_wait_ms} ms is refused"
                )
            await asyncio.sleep((behind + 1) / 1000)
            waited = True
        # The mark claimed at acquire time was reckoned from the earlier clock reading.
        if waited and not await self.renew():
            self.ensure_held()

    async def renew(self) -> bool:
        """Extend the lease and the high-water mark; False (and lost for good) when another owns it."""
        started = self._monotonic()
        renewed, high_water = await self._scripts["worker_id_renew"](
            keys=self._keys, args=[self._token, self._settings.lease_ttl_ms, self._clock()], client=self._redis
        )
        if not renewed:
            self._lost_because = "the lease lapsed or another process holds it now"
            return False
        self._renewed(started, int(high_water))
        return True

    async def keep_renewed(self, on_renewed: Callable[[int], None]) -> None:
        """Renew every third of the TTL until lost or ``stop_renewals``; ``on_renewed(high_water_ms)``."""
        interval_s = self._settings.lease_ttl_ms / 3 / 1000
        delay_s = interval_s
        while not await self._renewals_stop_within(delay_s):
            try:
                renewed = await self.renew()
            except RedisError as error:
                # Retry soon: the lease is trusted only until its local deadline.
                log.warning("worker id lease not renewed", worker_id=self.worker_id, error=str(error))
                delay_s = self._settings.renew_retry_ms / 1000
                continue
            if not renewed:
                log.error("worker id lease lost", worker_id=self.worker_id)
                return
            on_renewed(self.high_water_ms)
            delay_s = interval_s

    def stop_renewals(self) -> None:
        """Let ``keep_renewed`` return after any renewal in flight.

        Used instead of cancelling its task: redis-py can swallow a cancellation that lands
        mid-command (redis/redis-py#2028, #2551), and the task would then renew forever.
        """
        self._renewals_stopped.set()

    async def release(self, last_issued_ms: int) -> bool:
        """Give the worker id back; ``last_issued_ms`` becomes its high-water mark."""
        self._lost_because = "the lease was released"
        released = await self._scripts["worker_id_release"](
            keys=self._keys, args=[self._token, last_issued_ms], client=self._redis
        )
        log.info("worker id released", worker_id=self.worker_id, released=bool(released))
        return bool(released)

    async def _renewals_stop_within(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._renewals_stopped.wait()
        except TimeoutError:
            return False
        return True

    def _renewed(self, started: float, high_water_ms: int) -> None:
        # From the start of the call: Redis set the TTL no earlier than that.
        ttl_ms = self._settings.lease_ttl_ms - self._settings.lease_safety_margin_ms
        self._trusted_until = started + ttl_ms / 1000
        self.high_water_ms = high_water_ms
