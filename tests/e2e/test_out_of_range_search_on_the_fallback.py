"""With Elasticsearch out of reach, search answers from Postgres, and refuses the same ids and pages
that neither store can answer, before any query."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import System
from tests.e2e.test_out_of_range_input import refused_with
from tests.processes import free_port


@pytest.fixture(scope="module")
def api_env() -> dict[str, str]:
    """An API whose Elasticsearch never answers (nothing listens there), and no page cache."""
    return {"DAMAI_ELASTICSEARCH__URL": f"http://127.0.0.1:{free_port()}", "DAMAI_API__SEARCH_CACHE_TTL_S": "0"}


@pytest.mark.parametrize(
    "params", [{"parentCategoryId": 137284434887}, {"areaId": 1 << 31}, {"categoryId": 1 << 40}, {"keyword": "演\x00"}]
)
async def test_fallback_search_is_refused_when_an_id_or_a_keyword_is_not_what_the_stores_hold(system: System, params):
    response = await system.http.get("/api/v1/programs", params=params)

    assert refused_with(response), response.text


@pytest.mark.parametrize(("page", "size"), [(201, 50), (501, 20)])
async def test_fallback_search_is_refused_when_the_page_reaches_past_the_result_window(system: System, page, size):
    response = await system.http.get("/api/v1/programs", params={"page": page, "size": size})

    assert refused_with(response, "PAGE_TOO_DEEP"), response.text


async def test_fallback_search_answers_the_deepest_page_within_the_result_window(system: System):
    response = await system.http.get("/api/v1/programs", params={"page": 200, "size": 50})

    assert (response.status_code, response.json()["items"]) == (200, []), response.text


async def test_fallback_home_is_refused_when_the_area_is_past_what_the_stores_hold(system: System):
    response = await system.http.get("/api/v1/home", params={"areaId": 1 << 31})

    assert refused_with(response), response.text
