"""Availability as buyers see it, with a real allocator, lifecycle and projector worker: the
detail's remaining counts fall as seats are held and rise when a hold is cancelled or expires, and
the search says a program is sold out once its last seat is held, and no longer once a hold is
cancelled."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest
import pytest_asyncio
from elasticsearch import AsyncElasticsearch

from infra.postgres.sharded import ShardedDatabase
from infra.search import index_name
from tests.e2e.conftest import System, buyers_env
from tests.e2e.test_allocation import automatic, on_sale, order
from tests.e2e.test_order_requests import Buyer, signed_in_buyer
from tests.processes import Child, eventually

pytestmark = pytest.mark.slow
PAYMENT_WINDOW_S = 15
"""Long enough to hold, look and cancel before a hold expires; short enough to watch one expire."""
SEEN_S = 20


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    return buyers_env()


@pytest_asyncio.fixture(scope="module")
async def processors(system: System, tmp_path_factory) -> AsyncIterator[None]:
    logs = tmp_path_factory.mktemp("processors")
    env = {"DAMAI_ORDERS__PAYMENT_WINDOW_S": str(PAYMENT_WINDOW_S)}
    children = [
        Child(["cli.main", "allocator"], system.settings, logs / "allocator.log", env),
        Child(["cli.main", "lifecycle"], system.settings, logs / "lifecycle.log", env),
    ]
    yield
    for child in children:
        child.stop()


async def remaining(system: System, show: dict[str, Any]) -> int:
    detail = (await system.http.get(f"/api/v1/programs/{show['program']}")).json()
    [category] = [c for s in detail["showTimes"] for c in s["ticketCategories"] if c["id"] == str(show["category"])]
    count: int = category["remaining"]
    return count


async def remaining_is(system: System, show: dict[str, Any], expected: int) -> bool:
    return await remaining(system, show) == expected


async def hold(system: System, show: dict[str, Any], buyer: Buyer, count: int) -> str:
    held = await order(system, buyer, automatic(show, count))
    assert held.status_code == 201, held.text
    number: str = held.json()["orderNumber"]
    return number


async def cancel(system: System, buyer: Buyer, order_number: str) -> None:
    cancelled = await system.http.post(f"/api/v1/orders/{order_number}/cancel", headers=buyer.auth)
    assert cancelled.status_code == 200, cancelled.text


async def test_the_detail_counts_fall_with_each_hold_and_rise_when_one_is_cancelled_or_expires(
    system: System, catalogue: ShardedDatabase, processors
):
    show = await on_sale(system, catalogue, rows=1, columns=6, perOrderLimit=6, perAccountLimit=6)
    await eventually(partial(remaining_is, system, show, 6), SEEN_S, "the detail to count the layout")
    buyer = await signed_in_buyer(system)

    first = await hold(system, show, buyer, 2)
    await eventually(partial(remaining_is, system, show, 4), SEEN_S, "the detail to count the first hold")
    second = await hold(system, show, buyer, 2)
    await eventually(partial(remaining_is, system, show, 2), SEEN_S, "the detail to count the second hold")
    third = await hold(system, show, buyer, 2)
    await eventually(partial(remaining_is, system, show, 0), SEEN_S, "the detail to count the last seats held")
    await cancel(system, buyer, second)
    await eventually(partial(remaining_is, system, show, 2), SEEN_S, "the detail to count the cancelled seats")

    await eventually(
        partial(remaining_is, system, show, 6), PAYMENT_WINDOW_S + SEEN_S, "the detail to count the expired holds"
    )
    for number in (first, third):
        assert (await system.http.get(f"/api/v1/orders/{number}", headers=buyer.auth)).json()["status"] == "expired"


async def search(system: System, keyword: str, **params: Any) -> list[dict[str, Any]]:
    found = await system.http.get("/api/v1/programs", params={"keyword": keyword, **params})
    assert found.status_code == 200, found.text
    items: list[dict[str, Any]] = found.json()["items"]
    return items


async def searched(system: System, keyword: str, sold_out: bool) -> bool:
    """The program is found, and says it is sold out or not; hideSoldOut finds it only if not."""
    items = await search(system, keyword)
    hidden = not await search(system, keyword, hideSoldOut="true")
    return [i["soldOut"] for i in items] == [sold_out] and hidden == sold_out


async def test_the_search_says_sold_out_once_the_last_seat_is_held_and_not_once_a_hold_is_cancelled(
    system: System, catalogue: ShardedDatabase, processors, es: AsyncElasticsearch
):
    keyword = f"soldout{uuid.uuid4().hex[:10]}"
    show = await on_sale(system, catalogue, rows=1, columns=3, title=f"张学友 {keyword}")
    await eventually(partial(searched, system, keyword, False), SEEN_S, "the program in the search, with tickets")
    buyer, other = await signed_in_buyer(system), await signed_in_buyer(system)
    await hold(system, show, buyer, 1)
    held_by_other = await hold(system, show, other, 1)
    one_left = await search(system, keyword)

    last = await hold(system, show, buyer, 1)
    await eventually(partial(searched, system, keyword, True), SEEN_S, "the search to say sold out")
    index = index_name(system.settings.elasticsearch, "program")
    sold_out = (await es.get(index=index, id=str(show["program"])))["_source"]
    await cancel(system, other, held_by_other)
    await eventually(partial(searched, system, keyword, False), SEEN_S, "the search to say tickets are back")

    assert [i["soldOut"] for i in one_left] == [False]
    assert (sold_out["soldOut"], sold_out["availableShowTimes"]) == (True, [])
    assert (await system.http.get(f"/api/v1/orders/{last}", headers=buyer.auth)).json()["status"] == "unpaid"
