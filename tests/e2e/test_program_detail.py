"""GET /api/v1/programs/{id} over HTTP: errors, a served detail, invalidation across two API processes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from queries.cache import add_program_to_bloom, invalidate_program
from tests.e2e.conftest import System
from tests.processes import eventually, free_port, start_api
from tests.program_rows import insert_program, next_id, rename_program

# Far below the local TTL (30 s): a change seen this soon came through the invalidation stream.
INVALIDATED_S = 3.0


@pytest_asyncio.fixture
async def shards(system: System) -> AsyncIterator[ShardedDatabase]:
    pools = ShardPools(system.settings.postgres)
    await pools.start()
    yield ShardedDatabase(pools, shard_layout(system.settings))
    await pools.stop()


async def _published(redis: Redis, system: System, program_id: int) -> None:
    """What the projector does once a program's rows are committed."""
    await add_program_to_bloom(redis, system.settings, program_id)
    await invalidate_program(redis, system.settings, program_id)


async def test_unknown_program_is_404_program_not_found_when_its_id_was_never_used(system: System):
    unknown = next_id()

    response = await system.http.get(f"/api/v1/programs/{unknown}")

    assert response.status_code == 404
    assert response.json() == {
        "code": "PROGRAM_NOT_FOUND",
        "message": f"no program {unknown}",
        "details": {"programId": str(unknown)},
    }


@pytest.mark.parametrize("bad_id", ["abc", "1.5", "0", "-7", str(1 << 63)])
async def test_bad_id_is_422_validation_failed_when_it_is_not_a_63_bit_positive_integer(system: System, bad_id: str):
    response = await system.http.get(f"/api/v1/programs/{bad_id}")

    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_FAILED"


async def test_program_in_its_shard_is_served_when_it_is_published_to_the_cache(
    system: System, shards: ShardedDatabase, redis: Redis
):
    program = await insert_program(shards)
    await _published(redis, system, program.id)

    response = await system.http.get(f"/api/v1/programs/{program.id}")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["id"], body["title"], body["areaId"], body["status"]) == (
        str(program.id),
        "五月天 回到那一天",
        110000,
        "on_sale",
    )
    assert [s["id"] for s in body["showTimes"]] == [str(i) for i in program.show_time_ids]
    assert body["showTimes"][0]["ticketCategories"][1] == {
        "id": str(program.ticket_category_ids[0][1]),
        "name": "内场",
        "price": "1280.50",
        "total": 200,
        "remaining": 0,
    }


async def test_draft_program_is_404_when_it_is_not_published(system: System, shards: ShardedDatabase, redis: Redis):
    program = await insert_program(shards, status="draft")
    await _published(redis, system, program.id)

    response = await system.http.get(f"/api/v1/programs/{program.id}")

    assert response.status_code == 404
    assert response.json()["code"] == "PROGRAM_NOT_FOUND"


async def test_second_api_process_serves_the_changed_row_when_an_invalidation_is_published(
    system: System, shards: ShardedDatabase, redis: Redis, tmp_path
):
    settings = system.settings.model_copy(update={"api": system.settings.api.model_copy(update={"port": free_port()})})
    second, second_url = start_api(settings, tmp_path / "second-api.log")
    try:
        async with httpx.AsyncClient(base_url=second_url, timeout=10) as other:
            program = await insert_program(shards)
            await _published(redis, system, program.id)
            path = f"/api/v1/programs/{program.id}"
            assert (await system.http.get(path)).json()["title"] == "五月天 回到那一天"
            assert (await other.get(path)).json()["title"] == "五月天 回到那一天"
            await rename_program(shards, program.id, "五月天 加场")
            assert (await other.get(path)).json()["title"] == "五月天 回到那一天"  # its own copy, until told

            await invalidate_program(redis, system.settings, program.id)

            async def renamed() -> bool:
                return bool((await other.get(path)).json()["title"] == "五月天 加场")

            await eventually(renamed, INVALIDATED_S, "the second API process to serve the new title")
    finally:
        second.stop()
