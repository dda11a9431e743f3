"""The first claim of a mobile (a new ownership aggregate) as the user partition grows (ADR 0007).

In a namespace of its own, partition 0 of the user topic is filled with ``MobileClaimed`` events
(appended straight to the partition, ``--batch`` at a time), then ``damai rebuild snapshots`` puts
back their snapshots and the partition's snapshot coverage, as a deployment whose claims all went
through the store would have them. At each size of ``--sizes`` and for ``--rounds`` fresh mobiles
whose key falls in partition 0, three paths are timed on one ``AggregateStore`` (its publisher and
tail reader warm):

- baseline: the partition's coverage removed first, so a load with no snapshot reads the whole
  partition from the start (the path every registration took before);
- covered load: ``load`` with coverage, the events since the last check (the previous claim's one)
  read and their snapshots checked;
- covered claim: ``load`` + ``save`` (the claim script and the append), the whole first claim;

and once per size the coverage ``--lag`` events behind (claims saved without a load between), then
one load. Figures are medians, in ms. The namespace is removed afterwards.

    .venv/bin/python -m bench.aggregate_load --sizes 20000 100000 --rounds 9
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer

from aggregates.ownership import MobileOwnership
from cli.provision import cover_snapshots, provision_namespace, remove_namespace
from events.envelope import EventEnvelope
from events.serialization import encode
from infra.aggregate_store import AggregateStore
from infra.kafka import EventPublisher
from infra.redis import LuaScripts, create_redis
from infra.redis_keys import snapshot_coverage
from infra.settings import Settings, get_settings

PARTITION = 0
USER_ID = 4_200_000_000_000


def claim_envelope(blind: str, user_id: int) -> bytes:
    (decided,) = MobileOwnership.first_claim(blind, user_id).outbox()
    envelope = EventEnvelope.wrap(decided.event, aggregate_version=decided.version, occurred_at=decided.occurred_at)
    return encode(envelope)


async def fill(settings: Settings, events: int, batch: int) -> None:
    """Append ``events`` claims of fresh mobiles to the partition (not through the store)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all", linger_ms=20)
    await producer.start()
    topic = settings.kafka.topic("user")
    try:
        for start in range(0, events, batch):
            deliveries = []
            for i in range(start, min(events, start + batch)):
                blind = secrets.token_hex(32)
                value = claim_envelope(blind, USER_ID + i)
                key = MobileOwnership.create_id(blind).encode()
                deliveries.append(await producer.send(topic, value=value, key=key, partition=PARTITION))
            await asyncio.gather(*deliveries)
    finally:
        await producer.stop()


async def blind_in_partition(publisher: EventPublisher, settings: Settings) -> str:
    topic = settings.kafka.topic("user")
    while True:
        blind = secrets.token_hex(32)
        if (await publisher.partition_of(topic, MobileOwnership.create_id(blind))).partition == PARTITION:
            return blind


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await action()
    return (time.perf_counter() - started) * 1000


async def load_ms(store: AggregateStore, blind: str) -> float:
    """A load of a mobile nobody has claimed (it must find none)."""
    started = time.perf_counter()
    assert await store.load(MobileOwnership, MobileOwnership.create_id(blind)) is None
    return (time.perf_counter() - started) * 1000


async def first_claim_ms(store: AggregateStore, blind: str) -> float:
    """The whole first claim: the load, then the claim script and the append."""
    started = time.perf_counter()
    assert await store.load(MobileOwnership, MobileOwnership.create_id(blind)) is None
    await store.save(MobileOwnership.first_claim(blind, USER_ID), uuid.uuid4())
    return (time.perf_counter() - started) * 1000


def row(name: str, samples: list[float], baseline: float | None) -> str:
    median = statistics.median(samples)
    ratio = f"{baseline / median:9.0f}x" if baseline is not None else f"{'(baseline)':>10}"
    return f"  {name:<44} {median:10.2f} {min(samples):10.2f} {max(samples):10.2f} {ratio}"


async def measure(
    settings: Settings, store: AggregateStore, publisher: EventPublisher, args: argparse.Namespace
) -> None:
    redis = create_redis(settings.redis)
    coverage = snapshot_coverage(settings.kafka.topic("user"))
    filled = 0
    try:
        for size in args.sizes:
            await fill(settings, size - filled, args.batch)
            filled = size
            rebuild_ms = await timed(lambda: cover_snapshots(settings, rebuild_all=True))
            saved = await redis.hget(coverage, str(PARTITION))
            assert saved is not None, "the rebuild left the partition uncovered"
            baseline, load, claim = [], [], []
            for _ in range(args.rounds):
                await redis.hdel(coverage, str(PARTITION))
                baseline.append(await load_ms(store, await blind_in_partition(publisher, settings)))
                await redis.hset(coverage, str(PARTITION), saved)
                load.append(await load_ms(store, await blind_in_partition(publisher, settings)))
                claim.append(await first_claim_ms(store, await blind_in_partition(publisher, settings)))
                saved = await redis.hget(coverage, str(PARTITION))
                assert saved is not None, "a check dropped the coverage"
            lagging = []
            for _ in range(max(1, args.rounds // 3)):
                for _ in range(args.lag):
                    blind = await blind_in_partition(publisher, settings)
                    await store.save(MobileOwnership.first_claim(blind, USER_ID), None)
                lagging.append(await load_ms(store, await blind_in_partition(publisher, settings)))
            base = statistics.median(baseline)
            print(f"\n{size:,} events in the partition (rebuild of its snapshots: {rebuild_ms / 1000:.1f} s)")
            print(f"  {'path':<44} {'median ms':>10} {'min':>10} {'max':>10} {'faster':>10}")
            print(row("baseline: load, partition read from the start", baseline, None))
            print(row("covered: load (new aggregate)", load, base))
            print(row("covered: first claim (load + claim + append)", claim, base))
            print(row(f"covered, {args.lag} events behind: load", lagging, base))
    finally:
        await redis.aclose()


async def main(args: argparse.Namespace) -> None:
    settings = get_settings().namespaced(f"bench{uuid.uuid4().hex[:8]}")
    await provision_namespace(settings)
    redis = create_redis(settings.redis)
    publisher = EventPublisher(settings.kafka)
    await publisher.start()
    try:
        store = AggregateStore(settings, redis, LuaScripts(redis), publisher)
        warm = await blind_in_partition(publisher, settings)
        await store.load(MobileOwnership, MobileOwnership.create_id(warm))  # the tail reader's first metadata
        print(f"first claim of a mobile, user partition {PARTITION}, {args.rounds} rounds per path (ms)")
        await measure(settings, store, publisher, args)
    finally:
        await publisher.stop()
        await redis.aclose()
        await remove_namespace(settings)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000], help="events in the partition")
    parser.add_argument("--rounds", type=int, default=9, help="fresh mobiles per path and size")
    parser.add_argument("--lag", type=int, default=500, help="events the coverage is behind in the last row")
    parser.add_argument("--batch", type=int, default=5_000, help="events appended per round trip while filling")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
