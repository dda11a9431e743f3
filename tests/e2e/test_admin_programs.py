"""Admin program commands over HTTP, through Kafka and the projector, into the program shards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import available_seats, remaining_counts
from queries.views import programs
from tests.e2e.conftest import AREA, CHILD, PARENT, System, is_ok
from tests.processes import eventually

PROJECTED_S = 60


def program_body(**changes: Any) -> dict[str, Any]:
    return {
        "title": "陈奕迅 FEAR AND DREAMS",
        "actor": "陈奕迅",
        "venue": "杭州奥体中心",
        "areaId": AREA,
        "parentCategoryId": PARENT,
        "categoryId": CHILD,
        "seatSelectable": True,
        "showTimes": [
            {
                "startsAt": (datetime.now(UTC) + timedelta(days=20)).isoformat(),
                "ticketCategories": [
                    {"name": "VIP", "price": "1680.00", "seatGrid": {"rows": 10, "columns": 20}},
                    {"name": "看台", "price": "380.00", "seatGrid": {"rows": 20, "columns": 30, "firstRow": 11}},
                ],
            }
        ],
    } | changes


async def test_created_program_is_projected_with_its_seats_and_published(system: System, catalogue, redis):
    accepted = await system.http.post("/api/v1/admin/programs", json=program_body(), headers=system.admin())

    assert accepted.status_code == 202, accepted.text
    program_id = int(accepted.json()["programId"])
    assert accepted.headers["location"] == f"/api/v1/programs/{program_id}"

    async def laid_out() -> bool:
        # A program's events may reach the projector in more than one batch.
        return len(await programs.seats_of(catalogue, program_id)) == 800

    await eventually(laid_out, PROJECTED_S, "the draft program's 800 seats")
    assert await _status_is(catalogue, program_id, "draft")
    categories = await programs.ticket_categories_of(catalogue, program_id)
    assert sorted((c.name, c.total) for c in categories) == [("VIP", 200), ("看台", 600)]

    async def inventory_ready() -> bool:
        counts = await redis.hgetall(remaining_counts(program_id))
        return {int(k): int(v) for k, v in counts.items()} == {c.id: c.total for c in categories}

    await eventually(inventory_ready, PROJECTED_S, "the Redis inventory")
    assert sum([await redis.zcard(available_seats(program_id, c.id)) for c in categories]) == 800

    published = await system.http.post(f"/api/v1/admin/programs/{program_id}/publish", headers=system.admin())
    await eventually(lambda: _status_is(catalogue, program_id, "on_sale"), PROJECTED_S, "the program on sale")
    off = await system.http.post(
        f"/api/v1/admin/programs/{program_id}/off-sale", json={"reason": "档期调整"}, headers=system.admin()
    )
    await eventually(lambda: _status_is(catalogue, program_id, "off_sale"), PROJECTED_S, "the program off sale")

    assert published.status_code == 202 and off.status_code == 202

    async def detail_says_off_sale() -> bool:
        response = await system.http.get(f"/api/v1/programs/{program_id}")
        return response.status_code == 200 and response.json()["status"] == "off_sale"

    # The projector told the caches: the id joined the Bloom filter, and the change was invalidated.
    await eventually(detail_says_off_sale, PROJECTED_S, "the detail to show the program off sale")
    detail = (await system.http.get(f"/api/v1/programs/{program_id}")).json()
    assert detail["title"] == "陈奕迅 FEAR AND DREAMS"


async def test_publishing_twice_is_a_conflict(system: System, catalogue):
    accepted = await system.http.post("/api/v1/admin/programs", json=program_body(), headers=system.admin())
    program_id = int(accepted.json()["programId"])
    await eventually(lambda: _status_is(catalogue, program_id, "draft"), PROJECTED_S, "the draft program")
    await system.http.post(f"/api/v1/admin/programs/{program_id}/publish", headers=system.admin())
    await eventually(lambda: _status_is(catalogue, program_id, "on_sale"), PROJECTED_S, "the program on sale")

    again = await system.http.post(f"/api/v1/admin/programs/{program_id}/publish", headers=system.admin())

    assert again.status_code == 409
    assert again.json()["code"] == "PROGRAM_ALREADY_ON_SALE"


async def test_commands_on_an_unknown_program_are_not_found(system: System, catalogue):
    publish = await system.http.post("/api/v1/admin/programs/123456789/publish", headers=system.admin())
    off = await system.http.post("/api/v1/admin/programs/123456789/off-sale", json={}, headers=system.admin())

    assert (publish.status_code, publish.json()["code"]) == (404, "PROGRAM_NOT_FOUND")
    assert (off.status_code, off.json()["code"]) == (404, "PROGRAM_NOT_FOUND")


async def test_program_naming_unknown_references_is_refused(system: System, catalogue):
    unknown_area = await system.http.post(
        "/api/v1/admin/programs", json=program_body(areaId=999999), headers=system.admin()
    )
    wrong_child = await system.http.post(
        "/api/v1/admin/programs", json=program_body(categoryId=PARENT), headers=system.admin()
    )

    assert (unknown_area.status_code, unknown_area.json()["code"]) == (422, "AREA_UNKNOWN")
    assert (wrong_child.status_code, wrong_child.json()["code"]) == (422, "CATEGORY_MISMATCH")


async def test_program_commands_need_the_admin_credential(system: System):
    response = await system.http.post("/api/v1/admin/programs", json=program_body())

    assert response.status_code == 401


async def seats_projected(redis: Any, program_id: int, ticket_category_id: int, seats: int) -> None:
    """Wait until the Redis inventory holds the category's seats, all available."""

    async def there() -> bool:
        return int(await redis.zcard(available_seats(program_id, ticket_category_id))) == seats

    await eventually(there, PROJECTED_S, "the Redis inventory")


async def _status_is(db: ShardedDatabase, program_id: int, status: str) -> bool:
    program = await programs.get_program(db, program_id)
    return program is not None and program.status == status


async def _published(system: System, catalogue: ShardedDatabase, body: dict[str, Any]) -> int:
    accepted = await system.http.post("/api/v1/admin/programs", json=body, headers=system.admin())
    program_id = int(accepted.json()["programId"])
    await eventually(lambda: _status_is(catalogue, program_id, "draft"), PROJECTED_S, "the draft program")
    await system.http.post(f"/api/v1/admin/programs/{program_id}/publish", headers=system.admin())
    await eventually(lambda: is_ok(system, f"/api/v1/programs/{program_id}"), PROJECTED_S, "the published detail")
    return program_id


async def test_seat_map_groups_seats_by_price_with_their_live_state(system: System, catalogue, redis):
    program_id = await _published(system, catalogue, program_body())
    categories = {c.name: c.id for c in await programs.ticket_categories_of(catalogue, program_id)}

    await seats_projected(redis, program_id, categories["VIP"], 200)
    held = (await redis.zrange(available_seats(program_id, categories["VIP"]), 0, 0))[0].decode()
    await redis.zrem(available_seats(program_id, categories["VIP"]), held)  # as the allocator does

    response = await system.http.get(f"/api/v1/programs/{program_id}/seats")

    assert response.status_code == 200, response.text
    groups = response.json()["priceGroups"]
    assert [(g["price"], len(g["seats"])) for g in groups] == [("380.00", 600), ("1680.00", 200)]
    vip = {s["id"]: s for s in groups[1]["seats"]}
    assert vip[held]["state"] == "unavailable"
    assert sum(s["state"] == "available" for s in vip.values()) == 199
    first = groups[1]["seats"][0]
    assert (first["ticketCategoryId"], first["row"], first["column"]) == (str(categories["VIP"]), 1, 1)


async def test_seat_map_narrowed_to_one_ticket_category(system: System, catalogue, redis):
    program_id = await _published(system, catalogue, program_body())
    categories = {c.name: c.id for c in await programs.ticket_categories_of(catalogue, program_id)}

    await seats_projected(redis, program_id, categories["看台"], 600)

    stand = await system.http.get(
        f"/api/v1/programs/{program_id}/seats", params={"ticketCategoryId": categories["看台"]}
    )
    unknown = await system.http.get(f"/api/v1/programs/{program_id}/seats", params={"ticketCategoryId": 42})

    assert stand.status_code == 200, stand.text
    [group] = stand.json()["priceGroups"]
    assert (group["price"], group["ticketCategoryIds"], len(group["seats"])) == (
        "380.00",
        [str(categories["看台"])],
        600,
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "TICKET_CATEGORY_NOT_FOUND")


async def test_seat_map_of_a_program_without_seat_choice_is_refused(system: System, catalogue):
    body = program_body(
        seatSelectable=False,
        showTimes=[
            {
                "startsAt": (datetime.now(UTC) + timedelta(days=5)).isoformat(),
                "ticketCategories": [{"name": "普通票", "price": "180.00", "total": 300}],
            }
        ],
    )
    program_id = await _published(system, catalogue, body)

    response = await system.http.get(f"/api/v1/programs/{program_id}/seats")

    assert (response.status_code, response.json()["code"]) == (409, "SEATS_NOT_SELECTABLE")


async def test_seat_map_of_unknown_program_or_show_time_is_not_found(system: System, catalogue):
    program_id = await _published(system, catalogue, program_body())

    unknown_program = await system.http.get("/api/v1/programs/987654321/seats")
    unknown_show = await system.http.get(f"/api/v1/programs/{program_id}/seats", params={"showTimeId": 42})

    assert (unknown_program.status_code, unknown_program.json()["code"]) == (404, "PROGRAM_NOT_FOUND")
    assert (unknown_show.status_code, unknown_show.json()["code"]) == (404, "SHOW_TIME_NOT_FOUND")
