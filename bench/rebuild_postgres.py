"""Rebuild speed of a Postgres read model (docs/operations.md, "Rebuilding Postgres"), and what a
rebuild costs the live system while it runs.

In an isolated namespace: ``events`` ``SeatsReserved`` (two tickets each: an order row, two ticket
rows and two seat updates per event) are appended to the ``order`` topic and projected by a real
worker (``damai worker``): its speed is the baseline. Then ``damai rebuild postgres --projection
program`` runs while new orders keep arriving (``live_rate`` a second), and the same is measured
without a rebuild:

- events/s the rebuild replays into the shadow, against the live worker's events/s on the same log;
- how long the live projectors were frozen for the swap;
- for the orders arriving meanwhile: append → row in Postgres (p50 / p99), during the rebuild
  against the same with no rebuild;
- order lookups by number on the live tables (what the order view reads), p50 / p99, likewise.

    .venv/bin/python -m bench.rebuild_postgres [events] [live_rate]
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.export_speed import APPEND_CHUNK, reserved
from cli.provision import provision_namespace, remove_namespace
from infra.collector import tune_for_batches
from infra.kafka import EventPublisher
from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.settings import Settings, get_settings
from projections.offsets import lowest_applied_offsets
from projections.rebuild_postgres import rebuild_postgres

WINDOW_S = 20.0
LOOKUP = "SELECT status FROM {table} WHERE order_number = $1"
FIRST_ORDER = 1_000_000


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")


class Bench:
    def __init__(self, settings: Settings, events: int, live_rate: float):
        self.settings = settings
        self.events = events
        self.live_rate = live_rate
        self.next_order = events
        self.publisher = EventPublisher(settings.kafka)
        self.pools = ShardPools(settings.postgres)
        self.db = ShardedDatabase(self.pools, shard_layout(settings))

    async def applied(self) -> int:
        offsets = await lowest_applied_offsets(
            [p for _, p in self.pools], f"{self.settings.worker.projector_group}.order"
        )
        return sum(o + 1 for o in offsets.values())

    async def until_applied(self, count: int) -> None:
        while await self.applied() < count:
            await asyncio.sleep(0.2)

    async def append(self, first: int, count: int) -> None:
        now = datetime.now(UTC)
        for start in range(first, first + count, APPEND_CHUNK):
            await self.publisher.publish_many(
                [reserved(n, now) for n in range(start, min(start + APPEND_CHUNK, first + count))]
            )

    async def live_orders(self, until: asyncio.Event) -> list[float]:
        """Append one order every 1/live_rate s until ``until``; seconds from append to its row."""
        delays: list[float] = []
        pending: list[asyncio.Task[None]] = []

        async def follow(n: int, appended: float) -> None:
            number = FIRST_ORDER + n
            shard = self.db.layout.order(number)
            while await self.db.fetchval(shard, LOOKUP, number) is None:
                await asyncio.sleep(0.005)
            delays.append(time.perf_counter() - appended)

        while not until.is_set():
            n, self.next_order = self.next_order, self.next_order + 1
            await self.publisher.publish_many([reserved(n, datetime.now(UTC))])
            pending.append(asyncio.create_task(follow(n, time.perf_counter())))
            await asyncio.sleep(1 / self.live_rate)
        await asyncio.gather(*pending)
        return delays

    async def lookups(self, until: asyncio.Event) -> list[float]:
        """Look orders up by number on the live tables until ``until``; seconds each."""
        taken: list[float] = []
        while not until.is_set():
            number = FIRST_ORDER + random.randrange(self.events)
            began = time.perf_counter()
            await self.db.fetchval(self.db.layout.order(number), LOOKUP, number)
            taken.append(time.perf_counter() - began)
            await asyncio.sleep(0.002)
        return taken

    async def window(self, during: asyncio.Future[Any] | None) -> tuple[list[float], list[float]]:
        """Live orders and lookups for WINDOW_S, or for as long as ``during`` runs."""
        until = asyncio.Event()
        measured = asyncio.gather(self.live_orders(until), self.lookups(until))
        if during is None:
            await asyncio.sleep(WINDOW_S)
        else:
            await during
        until.set()
        delays, lookups = await measured
        return delays, lookups


def worker(settings: Settings, logs: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.namespace_env(), "DAMAI_OBSERVABILITY__METRICS_PORT": "0"}
    with logs.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def ms(values: list[float]) -> str:
    return f"p50 {percentile(values, 0.5) * 1000:.1f} / p99 {percentile(values, 0.99) * 1000:.1f} ms (n={len(values)})"


async def main(events: int, live_rate: float) -> None:
    settings = get_settings().namespaced(f"b{uuid.uuid4().hex[:10]}")
    await provision_namespace(settings)
    tune_for_batches()  # as `damai rebuild postgres` does
    bench = Bench(settings, events, live_rate)
    await bench.publisher.start()
    await bench.pools.start()
    child = worker(settings, Path(f"/tmp/bench-rebuild-{settings.postgres.schema_name}.log"))
    try:
        began = time.perf_counter()
        await bench.append(0, events)
        print(f"appended {events:,} SeatsReserved in {time.perf_counter() - began:.1f}s")
        began = time.perf_counter()
        await bench.until_applied(events)
        live_s = time.perf_counter() - began
        print(f"baseline: the live worker projected them in {live_s:.1f}s = {events / live_s:,.0f} events/s")

        quiet = await bench.window(None)
        rebuild = asyncio.ensure_future(rebuild_postgres(settings, "program", swap=True))
        during = await bench.window(rebuild)
        report = rebuild.result()
        total = report.events
        print(
            f"rebuild: {total:,} events replayed in {report.replay_s:.1f}s = {report.events_per_s:,.0f} events/s"
            f" (ratio to the live worker {report.events_per_s / (events / live_s):.2f});"
            f" live projectors frozen {report.frozen_ms:.0f} ms; tables equal: {report.equal}"
        )
        print(f"live order append → row, no rebuild:     {ms(quiet[0])}")
        print(f"live order append → row, during rebuild: {ms(during[0])}")
        print(f"order lookup, no rebuild:     {ms(quiet[1])}")
        print(f"order lookup, during rebuild: {ms(during[1])}")
        if statistics.median(quiet[1]) > 0:
            print(f"lookup p50 ratio during/without: {statistics.median(during[1]) / statistics.median(quiet[1]):.2f}")
    finally:
        child.terminate()
        child.wait(30)
        await bench.pools.stop()
        await bench.publisher.stop()
        await remove_namespace(settings)


if __name__ == "__main__":
    asyncio.run(
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, float(sys.argv[2]) if len(sys.argv) > 2 else 100)
    )
