"""Search highlights carry the matched field as escaped text with only the project's ``<em>`` marks,
byte for byte the same whether Elasticsearch or the Postgres fallback answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from elasticsearch import AsyncElasticsearch

from infra.postgres.sharded import ShardedDatabase
from infra.search import create_elasticsearch, index_name
from infra.settings import Settings
from queries.detail import load_program_detail
from queries.search import ProgramQuery, ProgramSearch, SortOrder
from queries.search_document import program_search_document
from queries.shapes import ProgramHitOut
from tests.processes import free_port
from tests.program_rows import STARTS, CategorySpec, ShowTimeSpec, insert_program

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")
MARKUP = [
    ("<img src=x onerror=alert(1)> fuzzxss", "<script>alert('x')</script> & \"quoted\" fuzzxss"),
    ('Tom & Jerry\'s "show" / fuzzxss <b>五月天</b>', "<i>五月天</i> & co"),
]
# "img" and "script" match inside a tag name; the others around and between escaped characters.
KEYWORDS = ["img", "script", "fuzzxss", "五月天", "quoted", "Jerry's"]


@pytest_asyncio.fixture
async def searches(
    db: tuple[ShardedDatabase, object], es: AsyncElasticsearch, isolated: Settings
) -> AsyncIterator[tuple[ProgramSearch, ProgramSearch]]:
    """The same programs on sale in Postgres and in the index, and a search over each: one with
    Elasticsearch reachable, one whose Elasticsearch is not (so it answers from Postgres)."""
    sharded, _ = db
    index = index_name(isolated.elasticsearch, "program")
    for title, actor in MARKUP:
        program = await insert_program(
            sharded, title=title, show_times=[ShowTimeSpec(STARTS, [CategorySpec("看台", Decimal("380"), 10, 10)])]
        )
        shard = sharded.layout.program_family("program", program.id)
        await sharded.pools[shard.database].execute(
            f"UPDATE {shard.table} SET actor = $2 WHERE id = $1", program.id, actor
        )
        detail = await load_program_detail(sharded, program.id)
        assert detail is not None
        await es.index(index=index, id=str(program.id), document=program_search_document(detail), refresh=True)
    unreachable = create_elasticsearch(
        isolated.elasticsearch.model_copy(update={"url": f"http://127.0.0.1:{free_port()}"})
    )
    retry_after_s = isolated.elasticsearch.retry_after_s
    yield (
        ProgramSearch(es, index, sharded, ZONE, retry_after_s),
        ProgramSearch(unreachable, index, sharded, ZONE, retry_after_s),
    )
    await unreachable.close()


def _highlights(hits: list[ProgramHitOut]) -> list[dict[str, str]]:
    return [h.highlight for h in hits]


@pytest.mark.parametrize("keyword", KEYWORDS)
async def test_highlights_are_the_same_bytes_when_postgres_answers_instead_of_elasticsearch(searches, keyword: str):
    elasticsearch, fallback = searches
    query = ProgramQuery(keyword=keyword, sort=SortOrder.SHOW_TIME)

    from_es = await elasticsearch.page(query, NOW)
    from_postgres = await fallback.page(query, NOW)

    assert from_es.hits, f"nothing found for {keyword!r}"
    assert _highlights(from_postgres.hits) == _highlights(from_es.hits)


async def test_markup_in_a_title_comes_back_escaped_when_a_keyword_matches_inside_its_tag(searches):
    elasticsearch, fallback = searches
    query = ProgramQuery(keyword="img", sort=SortOrder.SHOW_TIME)

    for search in (elasticsearch, fallback):
        [hit] = (await search.page(query, NOW)).hits

        assert hit.highlight["title"] == "&lt;<em>img</em> src=x onerror=alert(1)&gt; fuzzxss"


async def test_markup_in_an_actor_comes_back_escaped_with_every_match_marked(searches):
    elasticsearch, fallback = searches
    query = ProgramQuery(keyword="script", sort=SortOrder.SHOW_TIME)

    for search in (elasticsearch, fallback):
        [hit] = (await search.page(query, NOW)).hits

        assert hit.highlight["actor"] == (
            "&lt;<em>script</em>&gt;alert(&#x27;x&#x27;)&lt;&#x2F;<em>script</em>&gt; &amp; &quot;quoted&quot; fuzzxss"
        )


async def test_a_highlight_carries_no_markup_but_the_marks_whatever_the_fields_hold(searches):
    elasticsearch, fallback = searches
    query = ProgramQuery(keyword="fuzzxss", sort=SortOrder.SHOW_TIME)

    for search in (elasticsearch, fallback):
        hits = (await search.page(query, NOW)).hits

        assert len(hits) == len(MARKUP)
        for hit in hits:
            for text in hit.highlight.values():
                unmarked = text.replace("<em>", "").replace("</em>", "")
                assert not set("<>\"'") & set(unmarked), text
