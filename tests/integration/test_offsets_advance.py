"""The offset rule's two forms agree: ``advance`` (projections/batch.py, for the Postgres offsets)
and ``lua/offsets_advance.lua`` (the Redis inventory's), run on the real Redis with the same batches."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis import Redis

from infra.redis import lua_source
from infra.settings import Settings
from projections.batch import Delivered, advance, spans
from projections.inventory_projector import advance_args, gaps_of

partitions = st.tuples(st.sampled_from(["damai.program", "damai.reference"]), st.integers(0, 2))
offsets = st.integers(0, 40)
applied_offsets = st.dictionaries(partitions, st.integers(-1, 40), max_size=6)
batches = st.lists(
    st.builds(lambda tp, offset: Delivered(tp[0], tp[1], offset), partitions, offsets), min_size=1, max_size=20
)


@pytest.fixture(scope="module")
def sync_redis(settings: Settings) -> Iterator[Redis]:
    client = Redis(host=settings.redis.host, port=settings.redis.port, db=settings.redis.db, decode_responses=True)
    yield client
    client.close()


@hypothesis_settings(deadline=None)
@given(applied=applied_offsets, run=st.lists(batches, min_size=1, max_size=4))
def test_lua_and_python_advance_offsets_and_find_gaps_alike(
    sync_redis: Redis, applied: dict[tuple[str, int], int], run: list[list[Delivered]]
):
    script = sync_redis.register_script(lua_source("offsets_advance"))
    key = f"projector-offsets:test-{uuid.uuid4().hex}"
    if applied:
        sync_redis.hset(key, mapping={f"{t}:{p}": offset for (t, p), offset in applied.items()})
    in_python = dict(applied)
    try:
        for batch in run:
            reply = script(keys=[key], args=advance_args(batch))
            advanced, gaps = advance(in_python, spans(batch))
            in_python.update(advanced)

            assert gaps_of(reply) == gaps
            assert _offsets_in(sync_redis, key) == in_python
    finally:
        sync_redis.delete(key)


def _offsets_in(redis: Redis, key: str) -> dict[tuple[str, int], int]:
    """The hash as the Python side holds it: (topic, partition) → offset."""
    held: dict[tuple[str, int], int] = {}
    for field, offset in redis.hgetall(key).items():
        topic, partition = str(field).rsplit(":", 1)
        held[topic, int(partition)] = int(offset)
    return held
