"""The live remaining counts the detail lays over its cached document, read from the inventory."""

from __future__ import annotations

import itertools
import time

from infra.redis_keys import remaining_counts
from queries.cache import RemainingCounts

_program_ids = itertools.count(8_800_000_000_000 + int(time.time() * 1000) % 1_000_000_000)


async def test_an_unreadable_count_is_left_out_not_turned_into_an_error(settings, redis):
    program_id = next(_program_ids)
    await redis.hset(remaining_counts(program_id), mapping={"11": "480", "12": "9.2233720368547758e+18"})
    counts = RemainingCounts.open(settings)
    try:
        found = await counts.get(program_id)
    finally:
        await counts.close()
        await redis.delete(remaining_counts(program_id))

    assert found == {11: 480}
