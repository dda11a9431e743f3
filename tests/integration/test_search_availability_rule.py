"""The sold-out rule is written twice: in lua/search_availability.lua (what a reading finds) and in
queries/search_document.py (what the fallback and the documents apply). Generated counts hold the
two equal."""

from __future__ import annotations

import itertools
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.redis import lua_script
from infra.redis_keys import remaining_counts, search_availability
from queries.search_document import sold_out_categories

_program_ids = itertools.count(8_900_000_000_000 + int(time.time() * 1000) % 1_000_000_000)

COUNTS = st.dictionaries(
    st.integers(min_value=1, max_value=(1 << 63) - 1), st.integers(min_value=-5, max_value=10_000), max_size=12
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(counts=COUNTS)
async def test_the_script_finds_the_sold_out_categories_the_python_rule_finds(redis, counts):
    program_id = next(_program_ids)
    keys = [remaining_counts(program_id), search_availability(program_id)]
    if counts:
        await redis.hset(keys[0], mapping={str(c): str(n) for c, n in counts.items()})
    try:
        _, _, *found = await lua_script(redis, "search_availability")(keys=keys, args=["read"])
    finally:
        await redis.delete(*keys)

    assert frozenset(int(c) for c in found) == sold_out_categories(counts)
