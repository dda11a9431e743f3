"""The pure parts of the caches: memory bound and expiry, single flight, micro-caching, Bloom offsets, TTLs."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.settings import ProgramCacheSettings
from queries.cache.bloom import BloomShape
from queries.cache.local import LocalCache
from queries.cache.micro import MicroCache
from queries.cache.program_detail import detail_ttl_ms
from queries.cache.single_flight import SingleFlight


def test_least_recently_used_entry_goes_first_when_the_local_cache_is_full():
    cache: LocalCache[int, str] = LocalCache(max_entries=2)
    cache.put(1, "a", 60)
    cache.put(2, "b", 60)
    cache.get(1)

    cache.put(3, "c", 60)

    assert (cache.get(1), cache.get(2), cache.get(3)) == ("a", None, "c")
    assert len(cache) == 2


def test_entry_is_gone_when_its_ttl_has_passed():
    cache: LocalCache[int, str] = LocalCache(max_entries=10)
    cache.put(1, "a", 0.01)

    time.sleep(0.02)

    assert cache.get(1) is None
    assert len(cache) == 0


async def test_concurrent_callers_share_one_call_when_they_ask_for_the_same_key():
    flight: SingleFlight[int, int] = SingleFlight()
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return 42

    results = await asyncio.gather(*(flight.do(1, load) for _ in range(50)))

    assert results == [42] * 50
    assert calls == 1
    assert flight.in_flight() == 0


async def test_every_caller_gets_the_error_when_the_shared_call_fails():
    flight: SingleFlight[int, int] = SingleFlight()

    async def fail() -> int:
        await asyncio.sleep(0.01)
        raise ConnectionError("store down")

    results = await asyncio.gather(*(flight.do(1, fail) for _ in range(3)), return_exceptions=True)

    assert all(isinstance(r, ConnectionError) for r in results)


async def test_shared_call_goes_on_when_one_caller_is_cancelled():
    flight: SingleFlight[int, int] = SingleFlight()

    async def load() -> int:
        await asyncio.sleep(0.05)
        return 7

    impatient = asyncio.create_task(flight.do(1, load))
    patient = asyncio.create_task(flight.do(1, load))
    await asyncio.sleep(0.01)
    impatient.cancel()

    assert await patient == 7


async def test_caller_after_forget_starts_a_new_call_when_one_is_still_running():
    flight: SingleFlight[int, str] = SingleFlight()
    release = asyncio.Event()

    async def old() -> str:
        await release.wait()
        return "old"

    async def new() -> str:
        return "new"

    first = asyncio.create_task(flight.do(1, old))
    await asyncio.sleep(0)
    flight.forget(1)

    assert await flight.do(1, new) == "new"
    release.set()
    assert await first == "old"


@given(member=st.binary(min_size=1, max_size=16), bits=st.integers(64, 1 << 32), hashes=st.integers(1, 32))
def test_bloom_offsets_are_within_the_filter_and_repeatable_for_any_member(member: bytes, bits: int, hashes: int):
    shape = BloomShape(bits, hashes)

    offsets = shape.offsets(member)

    assert len(offsets) == hashes
    assert all(0 <= o < bits for o in offsets)
    assert offsets == shape.offsets(member)


def test_bloom_offsets_differ_for_each_hash_when_the_filter_is_a_power_of_two():
    shape = BloomShape(1 << 24, 7)

    assert all(len(set(shape.offsets(i.to_bytes(8, "big")))) == 7 for i in range(1000))


@pytest.mark.parametrize("base, jitter", [(600, 120), (1, 0), (30, 1)])
def test_detail_ttl_lies_between_base_and_base_plus_jitter_when_a_detail_is_found(base: int, jitter: int):
    settings = ProgramCacheSettings(redis_ttl_s=base, redis_ttl_jitter_s=jitter)

    ttls = [detail_ttl_ms(settings, found=True) for _ in range(2000)]

    assert min(ttls) >= base * 1000
    assert max(ttls) <= (base + jitter) * 1000
    assert len(set(ttls)) > 1 or jitter == 0  # jitter actually spreads expiries


def test_miss_ttl_is_the_negative_ttl_when_nothing_was_found():
    settings = ProgramCacheSettings(redis_negative_ttl_s=30)

    assert detail_ttl_ms(settings, found=False) == 30_000


class CountingLoad:
    """A slow load that answers how many times it has been called."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        await asyncio.sleep(0.02)
        return self.calls


async def test_micro_cache_shares_one_load_among_identical_requests_and_keeps_it_for_its_ttl():
    cache: MicroCache[str, int] = MicroCache("test_pages", ttl_s=0.2, max_entries=10)
    load = CountingLoad()

    together = await asyncio.gather(*(cache.get("q", load) for _ in range(50)))
    kept = await cache.get("q", load)
    await asyncio.sleep(0.25)
    after_ttl = await cache.get("q", load)

    assert together == [1] * 50 and kept == 1
    assert after_ttl == 2


async def test_micro_cache_without_ttl_still_coalesces_but_keeps_nothing():
    cache: MicroCache[str, int] = MicroCache("test_pages", ttl_s=0, max_entries=10)
    load = CountingLoad()

    together = await asyncio.gather(*(cache.get("q", load) for _ in range(10)))
    again = await cache.get("q", load)

    assert set(together) == {1} and again == 2


async def test_micro_cache_does_not_keep_a_failed_load():
    cache: MicroCache[str, int] = MicroCache("test_pages", ttl_s=10, max_entries=10)

    async def failing() -> int:
        raise ConnectionError("store down")

    async def working() -> int:
        return 7

    with pytest.raises(ConnectionError):
        await cache.get("q", failing)

    assert await cache.get("q", working) == 7


async def test_micro_cache_does_not_keep_a_load_that_cannot_say():
    cache: MicroCache[str, int | None] = MicroCache("test_pages", ttl_s=10, max_entries=10)
    answers = iter([None, 7])

    async def load() -> int | None:
        return next(answers)

    assert await cache.get("q", load) is None
    assert await cache.get("q", load) == 7
