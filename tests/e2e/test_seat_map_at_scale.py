"""The seat map split for stadiums: a layout clients cache under its ETag, and live states as a bitset."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio

from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import available_seats
from queries.seat_map import SeatLayoutOut, SeatStatesOut
from queries.views import programs
from tests.e2e.conftest import System
from tests.e2e.test_admin_programs import PROJECTED_S, _published, program_body, seats_projected
from tests.processes import eventually

STADIUM_PROJECTED_S = 240
STATES_TTL_S = 1.0  # DAMAI_PROGRAM_CACHE__SEAT_MAP_TTL_S's default
STATES_MAX_BYTES = 20_000


def layout_path(program_id: int, show_time_id: int | str) -> str:
    return f"/api/v1/programs/{program_id}/show-times/{show_time_id}/seat-layout"


def states_path(program_id: int, show_time_id: int | str) -> str:
    return f"/api/v1/programs/{program_id}/show-times/{show_time_id}/seat-states"


def available_ids(layout: dict[str, Any], states: dict[str, Any]) -> dict[str, set[str]]:
    """Each category's available seat ids, as a client decodes them: bit i of the bitset is seat i."""
    decoded = {}
    for category, state in zip(layout["ticketCategories"], states["ticketCategories"], strict=True):
        bits = base64.b64decode(state["bitset"])
        decoded[state["ticketCategoryId"]] = {
            seat_id for i, seat_id in enumerate(category["seatIds"]) if bits[i >> 3] & (0x80 >> (i & 7))
        }
    return decoded


def _category(layout: dict[str, Any], ticket_category_id: str) -> dict[str, Any]:
    categories: list[dict[str, Any]] = [c for c in layout["ticketCategories"] if c["id"] == ticket_category_id]
    [category] = categories
    return category


async def _inventory_ready(system: System, catalogue: ShardedDatabase, redis: Any, body: dict[str, Any]) -> int:
    """A published program whose every seat is in the Redis inventory."""
    program_id = await _published(system, catalogue, body)
    for category in await programs.ticket_categories_of(catalogue, program_id):
        await seats_projected(redis, program_id, category.id, category.total)
    return program_id


async def _show_time_of(system: System, program_id: int) -> int:
    [show] = (await system.http.get(f"/api/v1/programs/{program_id}")).json()["showTimes"]
    return int(show["id"])


@pytest_asyncio.fixture(scope="module")
async def theatre(system: System, catalogue: ShardedDatabase, redis: Any) -> AsyncIterator[tuple[int, int]]:
    """(program, show time) of the usual 800-seat program, its inventory projected; tests only read it."""
    program_id = await _inventory_ready(system, catalogue, redis, program_body())
    yield program_id, await _show_time_of(system, program_id)


async def test_layout_lists_each_category_with_its_seats_in_row_then_column_order(system: System, theatre):
    program_id, show_time_id = theatre

    response = await system.http.get(layout_path(program_id, show_time_id))

    assert response.status_code == 200, response.text
    layout = SeatLayoutOut.model_validate_json(response.content).model_dump(by_alias=True)
    categories = {c["name"]: c for c in layout["ticketCategories"]}
    assert sorted((c["name"], c["price"], len(c["seatIds"])) for c in categories.values()) == [
        ("VIP", "1680.00", 200),
        ("看台", "380.00", 600),
    ]
    for category in categories.values():
        positions = list(zip(category["rows"], category["columns"], strict=True))
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        assert len(set(category["seatIds"])) == len(category["seatIds"])
    vip, stand = categories["VIP"], categories["看台"]
    assert (vip["rows"][0], vip["columns"][0], vip["rows"][-1], vip["columns"][-1]) == (1, 1, 10, 20)
    assert (stand["rows"][0], stand["columns"][0]) == (11, 1)


async def test_layout_carries_a_strong_etag_and_is_public_for_a_minute(system: System, theatre):
    program_id, show_time_id = theatre

    response = await system.http.get(layout_path(program_id, show_time_id))

    assert response.headers["etag"] == f'"{response.json()["layoutVersion"]}"'
    assert response.headers["cache-control"] == "public, max-age=60"


async def test_layout_is_not_modified_when_if_none_match_names_its_etag(system: System, theatre):
    program_id, show_time_id = theatre
    etag = (await system.http.get(layout_path(program_id, show_time_id))).headers["etag"]

    same = await system.http.get(layout_path(program_id, show_time_id), headers={"If-None-Match": etag})
    among = await system.http.get(layout_path(program_id, show_time_id), headers={"If-None-Match": f'"x", {etag}'})
    other = await system.http.get(layout_path(program_id, show_time_id), headers={"If-None-Match": '"other"'})

    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", etag)
    assert among.status_code == 304
    assert (other.status_code, other.headers["etag"]) == (200, etag)


async def test_states_bitset_decodes_to_exactly_the_available_seats_when_some_are_held(
    system: System, catalogue, redis
):
    program_id = await _inventory_ready(system, catalogue, redis, program_body())
    show_time_id = await _show_time_of(system, program_id)
    layout = (await system.http.get(layout_path(program_id, show_time_id))).json()
    before = (await system.http.get(states_path(program_id, show_time_id))).json()
    ids = {c["name"]: int(c["id"]) for c in layout["ticketCategories"]}
    vip, stand = ids["VIP"], ids["看台"]
    held = [s.decode() for s in await redis.zrange(available_seats(program_id, vip), 5, 7)]
    held += [s.decode() for s in await redis.zrange(available_seats(program_id, stand), 0, 0)]
    await redis.zrem(available_seats(program_id, vip), *held[:3])  # as the allocator does
    await redis.zrem(available_seats(program_id, stand), held[3])
    await asyncio.sleep(STATES_TTL_S + 0.2)  # past the process's one build per second

    response = await system.http.get(states_path(program_id, show_time_id))

    assert response.status_code == 200, response.text
    states = SeatStatesOut.model_validate_json(response.content).model_dump(by_alias=True)
    assert states["layoutVersion"] == layout["layoutVersion"]
    assert {c["ticketCategoryId"]: c["available"] for c in before["ticketCategories"]} == {
        str(vip): 200,
        str(stand): 600,
    }
    assert {c["ticketCategoryId"]: c["available"] for c in states["ticketCategories"]} == {
        str(vip): 197,
        str(stand): 599,
    }
    in_redis = {
        str(c): {s.decode() for s in await redis.zrange(available_seats(program_id, c), 0, -1)} for c in (vip, stand)
    }
    assert available_ids(layout, states) == in_redis
    assert not set(held) & (in_redis[str(vip)] | in_redis[str(stand)])


async def test_reprice_changes_the_layout_etag(system: System, catalogue, redis):
    program_id = await _inventory_ready(system, catalogue, redis, program_body())
    show_time_id = await _show_time_of(system, program_id)
    before = await system.http.get(layout_path(program_id, show_time_id))
    [vip] = [c["id"] for c in before.json()["ticketCategories"] if c["name"] == "VIP"]

    repriced = await system.http.patch(
        f"/api/v1/admin/programs/{program_id}/ticket-categories/{vip}",
        json={"price": "1880.00"},
        headers=system.admin(),
    )

    assert repriced.status_code == 202, repriced.text

    async def layout_repriced() -> bool:
        after = await system.http.get(
            layout_path(program_id, show_time_id), headers={"If-None-Match": before.headers["etag"]}
        )
        return after.status_code == 200 and _category(after.json(), vip)["price"] == "1880.00"

    await eventually(layout_repriced, PROJECTED_S, "the layout to show the new price")
    after = await system.http.get(layout_path(program_id, show_time_id))
    assert after.headers["etag"] != before.headers["etag"]
    assert _category(after.json(), vip)["seatIds"] == _category(before.json(), vip)["seatIds"]
    states = (await system.http.get(states_path(program_id, show_time_id))).json()
    assert states["layoutVersion"] == after.json()["layoutVersion"]


async def test_layout_and_states_of_an_unknown_show_time_are_not_found(system: System, theatre):
    program_id, _ = theatre

    layout = await system.http.get(layout_path(program_id, 42))
    states = await system.http.get(states_path(program_id, 42))
    no_program = await system.http.get(layout_path(987654321, 42))

    assert (layout.status_code, layout.json()["code"]) == (404, "SHOW_TIME_NOT_FOUND")
    assert (states.status_code, states.json()["code"]) == (404, "SHOW_TIME_NOT_FOUND")
    assert (no_program.status_code, no_program.json()["code"]) == (404, "PROGRAM_NOT_FOUND")


async def test_layout_and_states_of_a_program_without_seat_choice_are_refused(system: System, catalogue):
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
    show_time_id = await _show_time_of(system, program_id)

    layout = await system.http.get(layout_path(program_id, show_time_id))
    states = await system.http.get(states_path(program_id, show_time_id))

    assert (layout.status_code, layout.json()["code"]) == (409, "SEATS_NOT_SELECTABLE")
    assert (states.status_code, states.json()["code"]) == (409, "SEATS_NOT_SELECTABLE")


async def test_states_of_a_50000_seat_stadium_are_a_few_kilobytes(system: System, catalogue, redis, capsys):
    body = program_body(
        venue="国家体育场",
        showTimes=[
            {
                "startsAt": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
                "ticketCategories": [{"name": "看台", "price": "880.00", "seatGrid": {"rows": 200, "columns": 250}}],
            }
        ],
    )
    program_id = await _published(system, catalogue, body)
    [stand] = await programs.ticket_categories_of(catalogue, program_id)
    assert stand.total == 50_000
    await eventually(
        lambda: _all_available(redis, program_id, stand.id, 50_000), STADIUM_PROJECTED_S, "the stadium's inventory"
    )
    show_time_id = await _show_time_of(system, program_id)

    layout = await system.http.get(layout_path(program_id, show_time_id))
    states = await system.http.get(states_path(program_id, show_time_id))
    whole_map = await system.http.get(f"/api/v1/programs/{program_id}/seats", params={"showTimeId": show_time_id})

    assert layout.status_code == states.status_code == whole_map.status_code == 200
    assert len(layout.json()["ticketCategories"][0]["seatIds"]) == 50_000
    assert states.json()["ticketCategories"][0]["available"] == 50_000
    assert len(states.content) < STATES_MAX_BYTES
    with capsys.disabled():
        print(
            f"\n50,000 seats: layout {len(layout.content):,} B, states {len(states.content):,} B, "
            f"whole /seats map {len(whole_map.content):,} B"
        )


async def _all_available(redis: Any, program_id: int, ticket_category_id: int, seats: int) -> bool:
    return int(await redis.zcard(available_seats(program_id, ticket_category_id))) == seats
