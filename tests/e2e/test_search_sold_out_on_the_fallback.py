"""With Elasticsearch out of the API's reach, the search answers from Postgres and still says
which programs are sold out: from the seat inventory's remaining counts, as the documents do."""

from __future__ import annotations

import uuid
from functools import partial

import pytest

from infra.postgres.sharded import ShardedDatabase
from tests.e2e.conftest import System, buyers_env
from tests.e2e.test_allocation import on_sale
from tests.e2e.test_order_requests import signed_in_buyer
from tests.e2e.test_search_sold_out import SEEN_S, cancel, hold, processors, searched
from tests.processes import eventually, free_port

pytestmark = pytest.mark.slow
__all__ = ["processors"]  # the allocator and the lifecycle, as a fixture of this module too


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    """An API whose Elasticsearch never answers (nothing listens there)."""
    return buyers_env(DAMAI_ELASTICSEARCH__URL=f"http://127.0.0.1:{free_port()}")


async def test_the_fallback_says_sold_out_once_the_last_seat_is_held_and_not_once_a_hold_is_cancelled(
    system: System, catalogue: ShardedDatabase, processors
):
    keyword = f"fallback{uuid.uuid4().hex[:10]}"
    show = await on_sale(system, catalogue, rows=1, columns=2, title=f"张学友 {keyword}")
    await eventually(partial(searched, system, keyword, False), SEEN_S, "the program in the search, with tickets")
    buyer, other = await signed_in_buyer(system), await signed_in_buyer(system)
    await hold(system, show, buyer, 1)
    held_by_other = await hold(system, show, other, 1)

    await eventually(partial(searched, system, keyword, True), SEEN_S, "the fallback to say sold out")
    await cancel(system, other, held_by_other)
    await eventually(partial(searched, system, keyword, False), SEEN_S, "the fallback to say tickets are back")

    fallbacks = (await system.http.get("/metrics")).text
    assert any(
        line.startswith("damai_search_fallbacks_total ") and float(line.split()[1]) > 0
        for line in fallbacks.splitlines()
    )
