import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from itertools import pairwise

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from infra.ids import ClockBehindHighWater, IdService, WorkerIdsExhausted, WorkerLeaseLost
from infra.ids.generator import wall_clock_ms
from infra.ids.layout import ENTITY_ID, GENE_BITS, ORDER_NUMBER, WORKER_COUNT, unix_ms_of, worker_id_of
from infra.ids.lease import WorkerLease, high_water_key, lease_key
from infra.redis import LuaScripts
from infra.settings import REPO_ROOT, IdSettings

TTL_MS = 900
PROCESSES = 4
IDS_PER_PROCESS = 5_000
PROCESS_TIMEOUT_S = 60


@pytest_asyncio.fixture
async def id_settings(redis: Redis) -> AsyncIterator[IdSettings]:
    """Short leases under a key tag of the test's own; its keys are deleted afterwards."""
    settings = IdSettings(
        key_tag=f"ids-test-{uuid.uuid4().hex[:10]}",
        lease_ttl_ms=TTL_MS,
        lease_safety_margin_ms=300,
        renew_retry_ms=50,
        max_high_water_wait_ms=500,
    )
    yield settings
    keys = [key async for key in redis.scan_iter(match=f"{{{settings.key_tag}}}:*", count=1000)]
    if keys:
        await redis.delete(*keys)


@pytest.fixture(scope="session")
def scripts(redis: Redis) -> LuaScripts:
    return LuaScripts(redis)


def clock_behind(ms: int):
    return lambda: wall_clock_ms() - ms


async def refuses_within(ids: IdService, timeout_s: float) -> WorkerLeaseLost:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ids.next_entity_id()
        except WorkerLeaseLost as lost:
            return lost
        await asyncio.sleep(0.05)
    raise AssertionError(f"still issuing ids after {timeout_s}s")


async def test_leases_get_different_worker_ids_when_taken_at_once(redis, scripts, id_settings):
    leases = await asyncio.gather(*(WorkerLease.acquire(redis, scripts, id_settings) for _ in range(32)))

    assert sorted(lease.worker_id for lease in leases) == list(range(32))


async def test_lease_is_refused_when_all_worker_ids_are_leased(redis, scripts, id_settings):
    for _ in range(WORKER_COUNT):
        await WorkerLease.acquire(redis, scripts, id_settings)

    with pytest.raises(WorkerIdsExhausted, match=f"all {WORKER_COUNT} worker ids"):
        await WorkerLease.acquire(redis, scripts, id_settings)


async def test_service_refuses_ids_when_another_process_took_its_worker_id(redis, scripts, id_settings):
    async with IdService.start(redis, scripts, id_settings) as ids:
        await redis.delete(lease_key(id_settings.key_tag, ids.worker_id))
        usurper = await WorkerLease.acquire(redis, scripts, id_settings)

        lost = await refuses_within(ids, timeout_s=3 * TTL_MS / 1000)

    assert usurper.worker_id == ids.worker_id
    assert "holds it now" in str(lost)


async def test_service_refuses_ids_when_its_lease_went_unrenewed_too_long(redis, scripts, id_settings):
    paused_s = 0.0
    async with IdService.start(redis, scripts, id_settings, monotonic=lambda: time.monotonic() + paused_s) as ids:
        ids.next_entity_id()

        paused_s = TTL_MS / 1000  # as if the process had been frozen for a whole TTL

        with pytest.raises(WorkerLeaseLost, match="not renewed in time"):
            ids.next_order_number(gene=3)


async def test_lease_is_lost_for_good_when_its_key_expired(redis, scripts, id_settings):
    lease = await WorkerLease.acquire(redis, scripts, id_settings)

    await asyncio.sleep(TTL_MS / 1000 + 0.2)

    assert await redis.exists(lease_key(id_settings.key_tag, lease.worker_id)) == 0
    with pytest.raises(WorkerLeaseLost):
        lease.ensure_held()
    assert await lease.renew() is False


async def test_renewal_keeps_the_lease_when_the_service_outlives_its_ttl(redis, scripts, id_settings):
    async with IdService.start(redis, scripts, id_settings) as ids:
        await asyncio.sleep(3 * TTL_MS / 1000)

        ids.next_entity_id()
        assert await redis.pttl(lease_key(id_settings.key_tag, ids.worker_id)) > 0
        assert (await WorkerLease.acquire(redis, scripts, id_settings)).worker_id != ids.worker_id


async def test_stopping_the_service_frees_its_worker_id(redis, scripts, id_settings):
    async with IdService.start(redis, scripts, id_settings) as ids:
        ids.next_entity_id()

    assert await redis.exists(lease_key(id_settings.key_tag, ids.worker_id)) == 0
    assert (await WorkerLease.acquire(redis, scripts, id_settings)).worker_id == ids.worker_id
    with pytest.raises(WorkerLeaseLost, match="released"):
        ids.next_entity_id()


async def test_stopping_the_service_leaves_the_last_issued_ms_as_high_water(redis, scripts, id_settings):
    async with IdService.start(redis, scripts, id_settings) as ids:
        last = max(ids.next_entity_id(), ids.next_order_number(gene=9), key=unix_ms_of)

    assert int(await redis.get(high_water_key(id_settings.key_tag, ids.worker_id))) == unix_ms_of(last)


async def test_new_holder_waits_then_issues_later_ids_when_restarted_after_a_clock_step_back(
    redis, scripts, id_settings
):
    async with IdService.start(redis, scripts, id_settings) as before:
        issued_before = [before.next_entity_id() for _ in range(100)]
    started = time.monotonic()

    async with IdService.start(redis, scripts, id_settings, clock=clock_behind(200)) as after:
        waited_s = time.monotonic() - started
        issued_after = after.next_entity_id()

    assert after.worker_id == before.worker_id
    assert waited_s >= 0.15
    assert issued_after > max(issued_before)


async def test_new_holder_refuses_when_a_crashed_holder_claimed_times_far_ahead_of_its_clock(
    redis, scripts, id_settings
):
    crashed = await WorkerLease.acquire(redis, scripts, id_settings)
    await asyncio.sleep(TTL_MS / 1000 + 0.1)  # the crashed holder's lease lapses; its mark stays

    with pytest.raises(ClockBehindHighWater):
        async with IdService.start(redis, scripts, id_settings, clock=clock_behind(2_000)):
            pass

    mark = await redis.get(high_water_key(id_settings.key_tag, crashed.worker_id))
    assert int(mark) == crashed.high_water_ms
    assert await redis.exists(lease_key(id_settings.key_tag, crashed.worker_id)) == 0


async def run_id_process(key_tag: str, start_at: float) -> list[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.id_generator_process",
        f"--count={IDS_PER_PROCESS}",
        f"--start-at={start_at}",
        cwd=REPO_ROOT,
        env={**os.environ, "DAMAI_IDS__KEY_TAG": key_tag},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), PROCESS_TIMEOUT_S)
    assert process.returncode == 0, err.decode(errors="replace")[-3000:]
    return out.decode().splitlines()


def strictly_increasing(ids: list[int]) -> bool:
    return all(earlier < later for earlier, later in pairwise(ids))


@pytest.mark.slow
async def test_ids_are_unique_and_time_ordered_when_issued_by_several_processes(id_settings):
    start_at = time.time() + 4

    outputs = await asyncio.gather(*(run_id_process(id_settings.key_tag, start_at) for _ in range(PROCESSES)))

    workers, entity_ids, order_numbers = [], [], []
    for lines in outputs:
        worker = int(lines[0].removeprefix("worker "))
        entities = [int(line.split()[1]) for line in lines if line.startswith("entity ")]
        orders = [(int(line.split()[1]), int(line.split()[2])) for line in lines if line.startswith("order ")]
        assert strictly_increasing(entities) and strictly_increasing([number for number, _ in orders])
        assert {worker_id_of(id_) for id_ in entities} == {worker_id_of(number) for number, _ in orders} == {worker}
        assert all(number % 2**GENE_BITS == gene for number, gene in orders)
        workers.append(worker)
        entity_ids += entities
        order_numbers += [number for number, _ in orders]
    assert len(set(workers)) == PROCESSES
    for issued, layout in ((entity_ids, ENTITY_ID), (order_numbers, ORDER_NUMBER)):
        assert len(set(issued)) == len(issued) == PROCESSES * IDS_PER_PROCESS
        times = [layout.unpack(id_).unix_ms for id_ in sorted(issued)]
        assert times == sorted(times)
