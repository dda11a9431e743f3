"""How deep a search page may reach: no deeper than the index serves, on either store."""

import pytest

from queries.search import RESULT_WINDOW, ProgramQuery


@pytest.mark.parametrize(("page", "size"), [(201, 50), (501, 20), (RESULT_WINDOW + 1, 1)])
def test_page_is_too_deep_when_it_reaches_past_the_result_window(page, size):
    assert ProgramQuery(page=page, size=size).too_deep


@pytest.mark.parametrize(("page", "size"), [(1, 10), (200, 50), (500, 20), (RESULT_WINDOW, 1)])
def test_page_is_served_when_its_last_hit_is_within_the_result_window(page, size):
    assert not ProgramQuery(page=page, size=size).too_deep
