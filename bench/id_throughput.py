"""Ids/s from one generator (entity ids and order numbers), beside baselines in the same run.

1. The project's ``IdService`` (a real worker-id lease in Redis, renewed in the background):
   ``next_entity_id()`` and ``next_order_number(gene)``, each checking the lease per id.
2. The pure core, ``IdGenerator.next()`` without the lease check.
3. Baselines in the same kind of loop: ``uuid_utils.uuid7()`` (time-ordered UUIDs, in Rust)
   and ``time.time_ns()`` alone (the clock read every id costs).

Order numbers have 64 sequence numbers per millisecond, so one worker tops out at 64,000/s
whatever the CPU; the entity layout's 16,384 per millisecond is far above what Python reaches.
Medians of ``--rounds`` rounds; the keys live under a key tag of the run's own, deleted after.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Callable

import uuid_utils

from infra.ids import IdService
from infra.ids.generator import IdGenerator
from infra.ids.layout import ENTITY_ID, EPOCH_MS, GENE_BITS
from infra.logging import configure_logging
from infra.redis import LuaScripts, create_redis
from infra.settings import get_settings

CHUNK = 1_000


async def per_second(issue: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for first in range(0, count, CHUNK):
        for _ in range(min(CHUNK, count - first)):
            issue()
        # Yield now and then, as a real process would: the lease is renewed on this loop,
        # and a loop blocked for a whole TTL makes the service refuse ids (WorkerLeaseLost).
        await asyncio.sleep(0)
    return count / (time.perf_counter() - started)


def order_numbers(ids: IdService) -> Callable[[], object]:
    genes = iter(range(1 << 62))
    return lambda: ids.next_order_number(next(genes) & ((1 << GENE_BITS) - 1))


async def measure(count: int, rounds: int) -> dict[str, list[float]]:
    settings = get_settings()
    ids_settings = settings.ids.model_copy(update={"key_tag": f"ids-bench-{uuid.uuid4().hex[:10]}"})
    redis = create_redis(settings.redis)
    core = IdGenerator(
        ENTITY_ID, worker_id=0, max_step_back_ms=ids_settings.max_clock_step_back_ms, issued_after_ms=EPOCH_MS - 1
    )
    figures: dict[str, list[float]] = {}
    try:
        async with IdService.start(redis, LuaScripts(redis), ids_settings) as ids:
            paths: dict[str, Callable[[], object]] = {
                "IdService.next_entity_id()": ids.next_entity_id,
                "IdService.next_order_number(gene)": order_numbers(ids),
                "IdGenerator.next() (core, entity ids)": core.next,
                "baseline: uuid_utils.uuid7()": uuid_utils.uuid7,
                "baseline: time.time_ns()": time.time_ns,
            }
            for _ in range(rounds):
                for name, issue in paths.items():
                    figures.setdefault(name, []).append(await per_second(issue, count))
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{{{ids_settings.key_tag}}}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000, help="ids per path per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)  # to stderr, apart from the figures
    figures = asyncio.run(measure(args.count, args.rounds))
    medians = {name: statistics.median(values) for name, values in figures.items()}
    baseline = medians["baseline: uuid_utils.uuid7()"]
    print(f"{args.count:,} ids per path per round, medians of {args.rounds} rounds")
    print(f"{'path':<40} {'ids/s':>12} {'µs/id':>7} {'vs uuid7':>9}")
    for name, rate in medians.items():
        print(f"{name:<40} {rate:>12,.0f} {1e6 / rate:>7.2f} {rate / baseline:>9.2f}")


if __name__ == "__main__":
    main()
