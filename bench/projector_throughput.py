"""Events/s through a Faust projector into Postgres, beside plain aiokafka consumers, in one run.

1. The project's producer appends N AreaCreated events to a fresh topic family.
2. Baseline A: a plain aiokafka consumer reads and decodes them all (no writes).
3. Baseline B: a plain aiokafka consumer decodes them and runs the same batched,
   offset-tracked Postgres projection the Faust agent runs.
4. Faust: the project's Faust app factory and projector runner, as a worker process.
The ratio Faust / B is what Faust itself costs on this path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from bench.bench_projection import TABLE_DDL, BenchProjector, projected
from cli.provision import provision_namespace, remove_namespace
from events.envelope import EventEnvelope
from events.reference import AreaCreated, AreaLevel
from events.serialization import decode
from infra.kafka import EventPublisher
from infra.postgres.pools import ShardPools
from infra.settings import REPO_ROOT, Settings, get_settings
from projections.batch import Delivered, Positioned

PRODUCE_CHUNK = 5000
POLL_S = 0.2


async def produce(settings: Settings, count: int) -> float:
    publisher = EventPublisher(settings.kafka)
    await publisher.start()
    started = time.perf_counter()
    try:
        for first in range(0, count, PRODUCE_CHUNK):
            envelopes = [
                EventEnvelope.wrap(
                    AreaCreated(area_id=i + 1, name=f"区域{i}", level=AreaLevel.CITY), aggregate_version=1
                )
                for i in range(first, min(first + PRODUCE_CHUNK, count))
            ]
            await publisher.publish_many(envelopes)
    finally:
        await publisher.stop()
    return count / (time.perf_counter() - started)


def _consumer(settings: Settings, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        settings.kafka.topic("reference"),
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=settings.worker.batch_size,
    )


async def plain_decode_only(settings: Settings, count: int) -> float:
    consumer = _consumer(settings, f"{settings.worker.projector_group}-plain-read")
    await consumer.start()
    try:
        seen, started = 0, time.perf_counter()
        while seen < count:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    decode(record.value)
                seen += len(records)
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def plain_projection(settings: Settings, pools: ShardPools, count: int) -> float:
    name = f"{settings.worker.projector_group}.plain"
    projector = BenchProjector(name, pools[settings.postgres.databases[0]])
    consumer = _consumer(settings, f"{settings.worker.projector_group}-plain-project")
    await consumer.start()
    try:
        started = time.perf_counter()
        while await projected(pools[settings.postgres.databases[0]], name) < count:
            batch = [
                Positioned(Delivered(r.topic, r.partition, r.offset), decode(r.value))
                for records in (await consumer.getmany(timeout_ms=1000)).values()
                for r in records
            ]
            await projector.apply(batch)
            await consumer.commit()
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def faust_projection(settings: Settings, pools: ShardPools, count: int, log: Path) -> float:
    name = f"{settings.worker.projector_group}.faust"
    env = {**os.environ, **settings.namespace_env(), "PYTHONPATH": str(REPO_ROOT)}
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "bench.faust_bench_worker", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
        try:
            pool = pools[settings.postgres.databases[0]]
            while await projected(pool, name) == 0:  # start-up and group join are not throughput
                if worker.poll() is not None:
                    raise RuntimeError(f"faust worker exited; see {log}")
                await asyncio.sleep(0.01)
            started, first = time.perf_counter(), await projected(pool, name)
            while (done := await projected(pool, name)) < count:
                await asyncio.sleep(POLL_S)
            return (done - first) / (time.perf_counter() - started)
        finally:
            worker.terminate()
            worker.wait()


async def one_round(settings: Settings, count: int, log: Path, results: dict[str, list[float]]) -> None:
    """All four paths on one fresh namespace (topics, schema), removed afterwards."""
    await provision_namespace(settings)
    pools = ShardPools(settings.postgres)
    await pools.start()
    try:
        await pools[settings.postgres.databases[0]].execute(TABLE_DDL)
        results["produce"].append(await produce(settings, count))
        results["plain read+decode"].append(await plain_decode_only(settings, count))
        results["plain projection"].append(await plain_projection(settings, pools, count))
        results["faust projection"].append(await faust_projection(settings, pools, count, log))
    finally:
        await pools.stop()
        await remove_namespace(settings)


async def main(count: int, rounds: int) -> None:
    base = get_settings()
    results: dict[str, list[float]] = {
        "produce": [],
        "plain read+decode": [],
        "plain projection": [],
        "faust projection": [],
    }
    for round_no in range(rounds):
        log = REPO_ROOT / "bench" / "results" / f"faust-worker-{round_no}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        await one_round(base.namespaced(f"bench{uuid.uuid4().hex[:8]}"), count, log, results)
        print(f"round {round_no + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in results.items()), flush=True)
    medians = {k: statistics.median(v) for k, v in results.items()}
    print(f"\n{count:,} events × {rounds} rounds — medians (events/s):")
    for k, v in medians.items():
        print(f"  {k:<20} {v:>10,.0f}")
    print(f"  faust / plain projection = {medians['faust projection'] / medians['plain projection']:.2f}")
    print(f"  plain projection / plain read+decode = {medians['plain projection'] / medians['plain read+decode']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.rounds))
