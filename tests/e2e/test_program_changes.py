"""Changing a program on sale: a show time moved and a price changed reach Postgres, the Redis
inventory, Elasticsearch and every cache; live counts reach the detail; a rebuilding worker
that replays the whole log changes none of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from elasticsearch import AsyncElasticsearch

from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import available_seats, program_keys_pattern, remaining_counts, ticket_category_prices
from infra.search import index_name
from projections.verify import verify_program_inventory
from queries.views import programs
from tests.consumer_groups import caught_up
from tests.e2e.conftest import System
from tests.e2e.test_admin_programs import PROJECTED_S, _published, program_body, seats_projected
from tests.processes import eventually, start_worker

pytestmark = pytest.mark.slow


def _path(program_id: int, rest: str = "") -> str:
    return f"/api/v1/admin/programs/{program_id}{rest}"


async def _on_sale_with_inventory(system: System, catalogue: ShardedDatabase, redis) -> tuple[int, int, int]:
    """A published program whose Redis inventory is in place: (program, show time, VIP category)."""
    program_id = await _published(system, catalogue, program_body())
    [show] = await programs.show_times_of(catalogue, program_id)
    vip = next(c for c in await programs.ticket_categories_of(catalogue, program_id) if c.name == "VIP")

    await seats_projected(redis, program_id, vip.id, 200)
    return program_id, show.id, vip.id


async def _search_document(system: System, es: AsyncElasticsearch, program_id: int) -> dict[str, Any]:
    found = await es.get(index=index_name(system.settings.elasticsearch, "program"), id=str(program_id))
    return {"version": found["_version"], **found["_source"]}


async def test_a_moved_show_time_and_a_new_price_reach_every_store_and_cache(
    system: System, catalogue: ShardedDatabase, redis, es: AsyncElasticsearch
):
    program_id, show_time_id, vip = await _on_sale_with_inventory(system, catalogue, redis)
    assert (await system.http.get(f"/api/v1/programs/{program_id}")).status_code == 200  # now in every cache
    moved_to = (datetime.now(UTC) + timedelta(days=45)).replace(microsecond=0)

    moved = await system.http.patch(
        _path(program_id, f"/show-times/{show_time_id}"),
        json={"startsAt": moved_to.isoformat()},
        headers=system.admin(),
    )
    repriced = await system.http.patch(
        _path(program_id, f"/ticket-categories/{vip}"), json={"price": "1880.00"}, headers=system.admin()
    )

    assert (moved.status_code, moved.json()["events"]) == (202, 1), moved.text
    assert (repriced.status_code, repriced.json()["events"]) == (202, 1), repriced.text

    async def detail_changed() -> bool:
        detail = (await system.http.get(f"/api/v1/programs/{program_id}")).json()
        [show] = detail["showTimes"]
        prices = {c["id"]: c["price"] for c in show["ticketCategories"]}
        return datetime.fromisoformat(show["startsAt"]) == moved_to and prices[str(vip)] == "1880.00"

    await eventually(detail_changed, PROJECTED_S, "the detail (through every cache) to show the change")
    [show] = await programs.show_times_of(catalogue, program_id)
    assert show.starts_at == moved_to
    vip_seats = await programs.seats_of(catalogue, program_id, vip)
    assert {s.price for s in vip_seats} == {Decimal("1880.00")} and len(vip_seats) == 200
    assert await redis.hget(ticket_category_prices(program_id), str(vip)) == b"1880.00"

    async def document_changed() -> bool:
        # The projector tells the caches before it indexes the search: the document may follow the
        # detail by a moment.
        document = await _search_document(system, es, program_id)
        return bool(document["showTimes"] == [moved_to.isoformat()] and document["maxPrice"] == 1880.0)

    await eventually(document_changed, PROJECTED_S, "the search document to show the change")
    seat_map = (await system.http.get(f"/api/v1/programs/{program_id}/seats")).json()
    assert [g["price"] for g in seat_map["priceGroups"]] == ["380.00", "1880.00"]
    on_the_new_day = {"timeWindow": "range", "startDate": _local_date(moved_to), "endDate": _local_date(moved_to)}

    async def searchable_on_the_new_day() -> bool:
        found = (await system.http.get("/api/v1/programs", params=on_the_new_day)).json()
        return [(p["id"], p["maxPrice"]) for p in found["items"]] == [(str(program_id), "1880.00")]

    await eventually(searchable_on_the_new_day, PROJECTED_S, "search to find the program on its new day")


def _local_date(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()


async def test_asking_for_what_already_is_appends_nothing(system: System, catalogue: ShardedDatabase, redis):
    program_id, show_time_id, vip = await _on_sale_with_inventory(system, catalogue, redis)
    [show] = await programs.show_times_of(catalogue, program_id)

    same_time = await system.http.patch(
        _path(program_id, f"/show-times/{show_time_id}"),
        json={"startsAt": show.starts_at.isoformat()},
        headers=system.admin(),
    )
    same_price = await system.http.patch(
        _path(program_id, f"/ticket-categories/{vip}"), json={"price": "1680.00"}, headers=system.admin()
    )

    assert (same_time.status_code, same_time.json()["events"]) == (202, 0)
    assert (same_price.status_code, same_price.json()["events"]) == (202, 0)


async def test_bad_changes_are_refused_and_change_nothing(system: System, catalogue: ShardedDatabase, redis):
    program_id, show_time_id, vip = await _on_sale_with_inventory(system, catalogue, redis)
    admin = system.admin()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(days=9)).isoformat()

    refusals = {
        "past": await system.http.patch(
            _path(program_id, f"/show-times/{show_time_id}"), json={"startsAt": past}, headers=admin
        ),
        "naive time": await system.http.patch(
            _path(program_id, f"/show-times/{show_time_id}"), json={"startsAt": "2030-01-01T20:00:00"}, headers=admin
        ),
        "unknown show time": await system.http.patch(
            _path(program_id, "/show-times/42"), json={"startsAt": future}, headers=admin
        ),
        "unknown program": await system.http.patch(
            _path(987654321, f"/show-times/{show_time_id}"), json={"startsAt": future}, headers=admin
        ),
        "negative price": await system.http.patch(
            _path(program_id, f"/ticket-categories/{vip}"), json={"price": "-1.00"}, headers=admin
        ),
        "three decimals": await system.http.patch(
            _path(program_id, f"/ticket-categories/{vip}"), json={"price": "99.999"}, headers=admin
        ),
        "too dear": await system.http.patch(
            _path(program_id, f"/ticket-categories/{vip}"), json={"price": "1000000.01"}, headers=admin
        ),
        "unknown category": await system.http.patch(
            _path(program_id, "/ticket-categories/42"), json={"price": "10.00"}, headers=admin
        ),
        "id beyond 63 bits": await system.http.patch(
            _path(program_id, f"/ticket-categories/{1 << 63}"), json={"price": "10.00"}, headers=admin
        ),
        "not admin": await system.http.patch(_path(program_id, f"/ticket-categories/{vip}"), json={"price": "10.00"}),
    }

    assert {name: (r.status_code, r.json()["code"]) for name, r in refusals.items()} == {
        "past": (422, "SHOW_TIME_IN_PAST"),
        "naive time": (422, "VALIDATION_FAILED"),
        "unknown show time": (404, "SHOW_TIME_NOT_FOUND"),
        "unknown program": (404, "PROGRAM_NOT_FOUND"),
        "negative price": (422, "VALIDATION_FAILED"),
        "three decimals": (422, "VALIDATION_FAILED"),
        "too dear": (422, "VALIDATION_FAILED"),
        "unknown category": (404, "TICKET_CATEGORY_NOT_FOUND"),
        "id beyond 63 bits": (422, "VALIDATION_FAILED"),
        "not admin": (401, "UNAUTHENTICATED"),
    }
    # No event: the version is still 7 (the program, its show time, two categories, two
    # seat chunks, the publication).
    program = await programs.get_program(catalogue, program_id)
    assert program is not None and program.aggregate_version == 7


async def test_the_detail_shows_the_inventory_live_remaining_counts(system: System, catalogue: ShardedDatabase, redis):
    program_id, _, vip = await _on_sale_with_inventory(system, catalogue, redis)
    assert _remaining(await system.http.get(f"/api/v1/programs/{program_id}"), vip) == 200

    taken = await redis.zrange(available_seats(program_id, vip), 0, 2)
    await redis.zrem(available_seats(program_id, vip), *taken)  # as the allocator will
    await redis.hincrby(remaining_counts(program_id), str(vip), -3)

    async def three_fewer() -> bool:
        return _remaining(await system.http.get(f"/api/v1/programs/{program_id}"), vip) == 197

    # remaining_ttl_s (1 s by default) bounds how long a process shows the old count.
    await eventually(three_fewer, 5, "the detail to show the live count")


def _remaining(response: Any, category_id: int) -> int:
    [show] = response.json()["showTimes"]
    return next(int(c["remaining"]) for c in show["ticketCategories"] if c["id"] == str(category_id))


async def test_a_rebuilding_worker_replaying_the_log_changes_no_store(
    system: System, catalogue: ShardedDatabase, redis, es: AsyncElasticsearch, tmp_path
):
    program_id, show_time_id, vip = await _on_sale_with_inventory(system, catalogue, redis)
    await system.http.patch(
        _path(program_id, f"/ticket-categories/{vip}"), json={"price": "1780.00"}, headers=system.admin()
    )
    await system.http.patch(
        _path(program_id, f"/show-times/{show_time_id}"),
        json={"startsAt": (datetime.now(UTC) + timedelta(days=60)).isoformat()},
        headers=system.admin(),
    )
    sold = (await redis.zrange(available_seats(program_id, vip), 0, 0))[0].decode()
    await redis.zrem(available_seats(program_id, vip), sold)  # a seat sold since: a replay must not resell it
    await redis.hincrby(remaining_counts(program_id), str(vip), -1)
    topic = system.settings.kafka.topic("program")
    partitions = system.settings.kafka.topics["program"].partitions
    group = system.settings.worker.projector_group
    await eventually(lambda: caught_up(system.settings, group, topic, partitions), PROJECTED_S, "the worker")

    async def current_price_indexed() -> bool:
        return bool((await _search_document(system, es, program_id))["maxPrice"] == 1780.0)

    await eventually(current_price_indexed, PROJECTED_S, "the new price in the search index")
    before = await _snapshot(catalogue, redis, es, system, program_id)

    rebuilding = system.settings.model_copy(
        update={
            "worker": system.settings.worker.model_copy(update={"projector_group": f"{group}-rebuild"}),
            "state_dir": tmp_path / "state",
        }
    )
    worker = start_worker(rebuilding, tmp_path / "rebuilding-worker.log")
    try:
        await eventually(
            lambda: caught_up(system.settings, f"{group}-rebuild", topic, partitions), 90, "the replay to finish"
        )
    finally:
        worker.stop()

    assert await _snapshot(catalogue, redis, es, system, program_id) == before
    assert '"projector.batch_failed"' not in worker.output()
    assert await verify_program_inventory(catalogue, redis, program_id) == []  # the new price included


async def _snapshot(
    catalogue: ShardedDatabase, redis, es: AsyncElasticsearch, system: System, program_id: int
) -> dict[str, Any]:
    """Everything the projectors wrote for one program: rows, inventory keys, search document."""
    keys = sorted([k async for k in redis.scan_iter(match=program_keys_pattern(program_id))])
    inventory: dict[bytes, Any] = {}
    for key in keys:
        kind = str(await redis.type(key), "ascii")
        if kind == "hash":
            inventory[key] = await redis.hgetall(key)
        elif kind == "zset":
            inventory[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            inventory[key] = await redis.smembers(key)
        else:
            inventory[key] = await redis.get(key)
    return {
        "program": await programs.get_program(catalogue, program_id),
        "show times": await programs.show_times_of(catalogue, program_id),
        "ticket categories": await programs.ticket_categories_of(catalogue, program_id),
        "seats": await programs.seats_of(catalogue, program_id),
        "inventory": inventory,
        "search document": await _search_document(system, es, program_id),
    }
