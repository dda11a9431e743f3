"""Bytes and build time of one show time's seat map, whole (``/seats``) or split (``seat-layout`` and
``seat-states``), for a 50,000-seat stadium.

The seat inventory of one show time is written into Redis as the inventory projector leaves it
(``infra/redis_keys.py``: a ``seat_facts`` hash and an ``available_seats`` sorted set per ticket
category; the demo stadium's four stands of 100 × 125 seats, 63-bit seat ids), with
``--held`` of the seats taken out of the available sets at random (seed 7), under a program id of
its own, removed at the end. Then, in this process, each answer is built the way its route builds
it on a cache miss, ``--builds`` times per round, and timed:

1. the whole map: ``seat_map`` (HGETALL and ZRANGE of every stand) + ``encode_seat_map``;
2. the layout: ``load_seat_layout`` (HGETALL of every stand, sort, encode, hash): built once per
   process while the program is unchanged, then a 304 or a cached body;
3. the states: ``read_seat_states`` (ZRANGE of every stand) + ``encode_seat_states`` against the
   layout: built once a second per process and show time.

Bytes are the response bodies, and the same gzipped (level 6, what a reverse proxy would send);
times are the median build of each round, median of the rounds. The memory a kept layout holds
(``tracemalloc``) is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import random
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from redis.asyncio import Redis

from infra.redis import create_redis
from infra.redis_keys import SEAT_ROW_STRIDE, available_seats, program_keys_pattern, seat_facts
from infra.settings import get_settings
from queries.detail import ShowTimeDetail, TicketCategoryDetail
from queries.seat_map import encode_seat_map, encode_seat_states, load_seat_layout, read_seat_states, seat_map

# The demo stadium (cli/demo/programs.py): four stands of 100 rows × 125 columns, stacked.
STANDS = (("内场", "1680.00"), ("一层看台", "1280.00"), ("二层看台", "880.00"), ("三层看台", "480.00"))
ROWS, COLUMNS = 100, 125
GZIP_LEVEL = 6
WRITE_BATCH = 5_000
SEED = 7


@dataclass
class Path:
    name: str
    build: Callable[[], Awaitable[bytes]]
    body: bytes = b""
    seconds: list[float] = field(default_factory=list)


async def lay_out(redis: Redis, program_id: int, held: float) -> ShowTimeDetail:
    """The stadium's inventory in Redis; what the detail says of its show time."""
    rng = random.Random(SEED)
    seat_id = program_id + 1_000
    categories = []
    for stand, (name, price) in enumerate(STANDS):
        category_id = program_id + 2 + stand
        facts: dict[str, str] = {}
        scores: dict[str, int] = {}
        for row in range(stand * ROWS + 1, (stand + 1) * ROWS + 1):
            for column in range(1, COLUMNS + 1):
                seat_id += 1
                facts[str(seat_id)] = f"{row}:{column}"
                if rng.random() >= held:
                    scores[str(seat_id)] = row * SEAT_ROW_STRIDE + column
        await _write(redis, program_id, category_id, facts, scores)
        categories.append(TicketCategoryDetail(category_id, name, Decimal(price), ROWS * COLUMNS, len(scores)))
    return ShowTimeDetail(program_id + 1, datetime.now(UTC), "on_sale", tuple(categories))


async def _write(
    redis: Redis, program_id: int, category_id: int, facts: dict[str, str], scores: dict[str, int]
) -> None:
    items = list(facts.items())
    for start in range(0, len(items), WRITE_BATCH):
        await redis.hset(seat_facts(program_id, category_id), mapping=dict(items[start : start + WRITE_BATCH]))
    members = list(scores.items())
    for start in range(0, len(members), WRITE_BATCH):
        await redis.zadd(available_seats(program_id, category_id), dict(members[start : start + WRITE_BATCH]))


async def remove(redis: Redis, program_id: int) -> None:
    async for key in redis.scan_iter(match=program_keys_pattern(program_id)):
        await redis.delete(key)


async def measure(redis: Redis, program_id: int, show: ShowTimeDetail, args: argparse.Namespace) -> list[Path]:
    layout = await load_seat_layout(redis, program_id, show)

    async def whole_map() -> bytes:
        return encode_seat_map(program_id, show.id, await seat_map(redis, program_id, show.ticket_categories))

    async def layout_document() -> bytes:
        return (await load_seat_layout(redis, program_id, show)).document

    async def states() -> bytes:
        return encode_seat_states(program_id, show.id, layout, await read_seat_states(redis, program_id, layout))

    paths = [Path("whole map (/seats)", whole_map), Path("layout", layout_document), Path("states", states)]
    for path in paths:  # warm-up: connections, the interpreter's specialisation
        path.body = await path.build()
    for round_number in range(args.rounds):
        shift = round_number % len(paths)
        for path in paths[shift:] + paths[:shift]:
            times = []
            for _ in range(args.builds):
                started = time.perf_counter()
                await path.build()
                times.append(time.perf_counter() - started)
            path.seconds.append(statistics.median(times))
    return paths


async def layout_memory(redis: Redis, program_id: int, show: ShowTimeDetail) -> int:
    """Bytes a kept layout holds (its document, seat ids and positions)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    layout = await load_seat_layout(redis, program_id, show)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del layout
    return held


def report(paths: list[Path], show: ShowTimeDetail, memory: int, args: argparse.Namespace) -> None:
    seats = sum(c.total for c in show.ticket_categories)
    available = sum(c.remaining for c in show.ticket_categories)
    print(
        f"\n{seats:,} seats in {len(show.ticket_categories)} stands, {available:,} available; "
        f"median build of {args.builds} per round, median of {args.rounds} rounds"
    )
    print(f"{'answer':<20} {'bytes':>11} {'gzip bytes':>11} {'build ms':>9} {'vs map':>7}")
    whole_ms = statistics.median(paths[0].seconds) * 1000
    for path in paths:
        ms = statistics.median(path.seconds) * 1000
        zipped = len(gzip.compress(path.body, GZIP_LEVEL))
        print(f"{path.name:<20} {len(path.body):>11,} {zipped:>11,} {ms:>9.1f} {ms / whole_ms:>7.3f}")
        print(f"{'':<20} rounds ms: {', '.join(f'{s * 1000:.1f}' for s in path.seconds)}")
    print(f"a kept layout holds {memory / 2**20:.1f} MiB")


async def run(args: argparse.Namespace) -> None:
    redis = create_redis(get_settings().redis)
    # An id of its own, shaped like a 63-bit entity id, far from those the id service hands out.
    program_id = (int(time.time() * 1000) << 22) & ((1 << 62) - 1) | (1 << 62)
    try:
        show = await lay_out(redis, program_id, args.held)
        paths = await measure(redis, program_id, show, args)
        memory = await layout_memory(redis, program_id, show)
    finally:
        await remove(redis, program_id)
        await redis.aclose()
    report(paths, show, memory, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--builds", type=int, default=10, help="builds of each answer per round")
    parser.add_argument("--held", type=float, default=0.3, help="share of the seats held or sold (0.3)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
