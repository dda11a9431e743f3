"""`damai rebuild search` and `damai verify search` against real Postgres, Redis and Elasticsearch:
the program search index built anew from the read model beside the live one, the live name moved
to it, live writes during the rebuild caught up; the live documents checked against the read model."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from infra.postgres.pools import ShardPools
from infra.postgres.routing import shard_layout
from infra.postgres.sharded import ShardedDatabase
from infra.redis_keys import remaining_counts, search_availability
from infra.search import LiveIndex, SearchBusy, freeze_writes, index_name, live_index
from infra.settings import Settings
from projections.rebuild_search import SearchRebuild, SearchRebuilt, rebuild_search, verify_search
from projections.search_index import SearchIndex
from queries.search import ProgramQuery, search_programs
from tests.program_rows import insert_program, next_id, rename_program

ON_SALE = 3
COMMAND_TIMEOUT_S = 120


@dataclass
class Catalogue:
    """Programs in the read model, indexed by the live path: three on sale (the first sold out), a
    draft."""

    settings: Settings
    es: AsyncElasticsearch
    db: ShardedDatabase
    redis: Redis
    on_sale: list[int]

    @property
    def live(self) -> str:
        return index_name(self.settings.elasticsearch, "program")

    async def index_live(self, program_ids: list[int]) -> None:
        """Write the programs' documents as the projectors do, through the live name."""
        live = SearchIndex(self.es, self.db, self.redis, self.settings)
        await live.write(await live.read(program_ids))
        await self.es.indices.refresh(index=self.live)

    async def rebuild(self, **rebuild_settings: object) -> SearchRebuilt:
        settings = self.settings.model_copy(
            update={"rebuild": self.settings.rebuild.model_copy(update=rebuild_settings)}
        )
        return await rebuild_search(settings, self.es, self.db, self.redis)

    async def title_in(self, index: str, program_id: int) -> str:
        return str((await self.es.get(index=index, id=str(program_id)))["_source"]["title"])


async def _catalogue(settings: Settings, es: AsyncElasticsearch, redis: Redis) -> AsyncIterator[Catalogue]:
    pools = ShardPools(settings.postgres)
    await pools.start()
    db = ShardedDatabase(pools, shard_layout(settings))
    on_sale = [(await insert_program(db, title=f"五月天 {n}")) for n in range(ON_SALE)]
    draft = await insert_program(db, status="draft")
    sold_out = [c for show in on_sale[0].ticket_category_ids for c in show]
    await redis.hset(remaining_counts(on_sale[0].id), mapping=dict.fromkeys(map(str, sold_out), 0))
    catalogue = Catalogue(settings, es, db, redis, [p.id for p in on_sale])
    await catalogue.index_live([*catalogue.on_sale, draft.id])
    yield catalogue
    for p in [*catalogue.on_sale, draft.id]:
        await redis.delete(remaining_counts(p), search_availability(p))
    await pools.stop()


@pytest_asyncio.fixture
async def catalogue(isolated: Settings, es: AsyncElasticsearch, redis: Redis) -> AsyncIterator[Catalogue]:
    async for found in _catalogue(isolated, es, redis):
        yield found


@pytest_asyncio.fixture
async def pre_alias_catalogue(isolated: Settings, es: AsyncElasticsearch, redis: Redis) -> AsyncIterator[Catalogue]:
    """The same programs in a deployment from before aliases: an index of the live name itself."""
    live = index_name(isolated.elasticsearch, "program")
    provisioned = await live_index(es, live)
    assert provisioned is not None
    await es.indices.delete(index=provisioned.name)
    await es.indices.create(index=live)
    async for found in _catalogue(isolated, es, redis):
        yield found


async def test_the_rebuilt_index_holds_the_documents_of_the_replaced_one_when_nothing_changed(catalogue: Catalogue):
    rebuilt = await catalogue.rebuild()

    assert rebuilt.documents == ON_SALE
    assert rebuilt.caught_up == 0
    assert rebuilt.old_hash is not None and rebuilt.old_hash.count == ON_SALE
    assert rebuilt.new_hash == rebuilt.old_hash


async def test_reads_through_the_live_name_find_the_new_index_when_the_rebuild_is_done(catalogue: Catalogue):
    before = await live_index(catalogue.es, catalogue.live)

    rebuilt = await catalogue.rebuild()

    assert before is not None and rebuilt.old_index == before.name
    assert await live_index(catalogue.es, catalogue.live) == LiveIndex(rebuilt.new_index, aliased=True)
    page = await search_programs(
        catalogue.es, catalogue.live, ProgramQuery(size=10), datetime.now(UTC), ZoneInfo("Asia/Shanghai")
    )
    assert sorted(int(hit.id) for hit in page.hits) == sorted(catalogue.on_sale)
    assert [hit.sold_out for hit in page.hits if int(hit.id) == catalogue.on_sale[0]] == [True]


async def test_the_replaced_index_is_kept_frozen_for_writes_when_the_settings_keep_it(catalogue: Catalogue):
    rebuilt = await catalogue.rebuild(keep_replaced=True)
    assert rebuilt.old_index is not None
    stray = SearchIndex(catalogue.es, catalogue.db, catalogue.redis, catalogue.settings, index=rebuilt.old_index)

    with pytest.raises(SearchBusy):  # a writer would retry, through the live name
        await stray.write(await stray.read(catalogue.on_sale[:1]))

    assert rebuilt.old_kept
    assert (await catalogue.es.count(index=rebuilt.old_index))["count"] == ON_SALE


async def test_the_replaced_index_is_deleted_when_the_settings_do_not_keep_it(catalogue: Catalogue):
    rebuilt = await catalogue.rebuild(keep_replaced=False)

    assert not rebuilt.old_kept
    assert rebuilt.old_index is not None
    assert not await catalogue.es.indices.exists(index=rebuilt.old_index)


async def test_a_program_changed_during_the_rebuild_is_right_in_the_new_index(catalogue: Catalogue):
    changed = catalogue.on_sale[1]
    rebuild = await SearchRebuild.begin(catalogue.settings, catalogue.es, catalogue.db, catalogue.redis)
    await rebuild.fill()
    # The program projector applies a rename after the copy, before the move: into the old index.
    await rename_program(catalogue.db, changed, "五月天 加场")
    await catalogue.index_live([changed])

    rebuilt = await rebuild.finish()

    assert rebuild.old is not None
    assert await catalogue.title_in(rebuild.old.name, changed) == "五月天 加场"
    assert await catalogue.title_in(rebuilt.new_index, changed) == "五月天 加场"
    assert rebuilt.caught_up == 1
    assert rebuilt.new_hash == rebuilt.old_hash


async def test_an_index_of_the_live_name_itself_is_replaced_by_the_alias_when_rebuilt(
    pre_alias_catalogue: Catalogue,
):
    catalogue = pre_alias_catalogue

    rebuilt = await catalogue.rebuild(keep_replaced=True)

    assert rebuilt.old_index == catalogue.live
    assert not rebuilt.old_kept  # its name had to become the alias
    assert await live_index(catalogue.es, catalogue.live) == LiveIndex(rebuilt.new_index, aliased=True)
    assert rebuilt.new_hash == rebuilt.old_hash
    assert rebuilt.new_hash.count == ON_SALE


async def test_a_rebuild_stopped_before_its_move_leaves_the_live_index_as_it_was(pre_alias_catalogue: Catalogue):
    catalogue = pre_alias_catalogue
    changed = catalogue.on_sale[1]
    rebuild = await SearchRebuild.begin(catalogue.settings, catalogue.es, catalogue.db, catalogue.redis)
    await rebuild.fill()
    await freeze_writes(catalogue.es, catalogue.live)  # stopped during the catch-up

    await rebuild.abandon()

    await rename_program(catalogue.db, changed, "五月天 加场")
    await catalogue.index_live([changed])
    assert await catalogue.title_in(catalogue.live, changed) == "五月天 加场"
    assert await live_index(catalogue.es, catalogue.live) == LiveIndex(catalogue.live, aliased=False)
    assert not await catalogue.es.indices.exists(index=rebuild.new)


async def test_verify_finds_no_difference_when_the_index_says_what_the_read_model_does(catalogue: Catalogue):
    verified = await verify_search(catalogue.settings, catalogue.es, catalogue.db, catalogue.redis)

    assert verified.agrees
    assert verified.indexed == verified.fresh
    assert verified.fresh.count == ON_SALE


async def test_verify_names_each_document_that_differs_when_the_index_was_tampered_with(catalogue: Catalogue):
    tampered, lost = catalogue.on_sale[1], catalogue.on_sale[2]
    stranger = str(next_id())
    es, live = catalogue.es, catalogue.live
    await es.update(index=live, id=str(tampered), doc={"title": "五月天 假场"})
    await es.delete(index=live, id=str(lost))
    await es.index(index=live, id=stranger, document={"id": stranger, "title": "无此节目"})
    await es.indices.refresh(index=live)

    verified = await verify_search(catalogue.settings, es, catalogue.db, catalogue.redis)

    assert not verified.agrees
    assert (verified.different, verified.missing, verified.extra) == ([str(tampered)], [str(lost)], [stranger])
    assert verified.indexed != verified.fresh


def _command(settings: Settings, command: str) -> subprocess.CompletedProcess[str]:
    """A command function of cli/rebuild_search.py as its own process, in the test's namespace."""
    program = f"import typer; from cli.rebuild_search import {command}; typer.run({command})"
    env = {**os.environ, **settings.namespace_env(), "DAMAI_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )


async def test_the_verify_command_exits_1_naming_the_document_when_one_differs(catalogue: Catalogue):
    tampered = catalogue.on_sale[1]
    await catalogue.es.update(index=catalogue.live, id=str(tampered), doc={"title": "五月天 假场"}, refresh=True)

    done = _command(catalogue.settings, "verify_search_command")

    assert done.returncode == 1, done.stderr
    assert f"{tampered} different" in done.stdout
    assert f"{ON_SALE} documents checked, 1 differences" in done.stdout


async def test_the_rebuild_command_puts_a_new_index_live_and_verify_then_agrees(catalogue: Catalogue):
    before = await live_index(catalogue.es, catalogue.live)

    rebuilt = _command(catalogue.settings, "rebuild_search_command")
    verified = _command(catalogue.settings, "verify_search_command")

    after = await live_index(catalogue.es, catalogue.live)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert before is not None and after is not None and after.name != before.name
    assert f"{ON_SALE} documents written to {after.name}, now live" in rebuilt.stdout
    assert "(the same)" in rebuilt.stdout
    assert verified.returncode == 0, verified.stderr
    assert f"{ON_SALE} documents checked, 0 differences" in verified.stdout
