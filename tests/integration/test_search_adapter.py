import asyncio

from elasticsearch import AsyncElasticsearch, ConflictError

from infra.search import LiveIndex, apply_index_templates, index_name, index_templates, live_index
from infra.settings import Settings


async def without_indices(es: AsyncElasticsearch, settings: Settings) -> None:
    """Delete what provisioning made under the test's prefix: a fresh prefix again."""
    found = await es.indices.get(index=f"{settings.elasticsearch.index_prefix}*", expand_wildcards="all")
    if found:
        await es.indices.delete(index=",".join(found))


async def test_program_template_applies_to_a_new_index(es: AsyncElasticsearch, isolated: Settings):
    index = index_name(isolated.elasticsearch, "program")

    await es.index(
        index=index,
        id="310000",
        document={"id": "310000", "title": "上海", "status": "on_sale"},
        version=1,
        version_type="external",
        refresh=True,
    )
    [mapping] = (await es.indices.get_mapping(index=index)).values()

    assert mapping["mappings"]["dynamic"] == "strict"
    assert (await es.get(index=index, id="310000"))["_source"]["title"] == "上海"


async def test_an_older_external_version_never_overwrites_a_newer_one(es: AsyncElasticsearch, isolated: Settings):
    index = index_name(isolated.elasticsearch, "program")
    await es.index(index=index, id="1", document={"id": "1", "title": "new"}, version=2, version_type="external")

    try:
        await es.index(
            index=index,
            id="1",
            document={"id": "1", "title": "old"},
            version=1,
            version_type="external",
        )
        raised = False
    except ConflictError:
        raised = True

    assert raised
    assert (await es.get(index=index, id="1"))["_source"]["title"] == "new"


async def test_an_index_created_before_a_new_field_gets_it_at_the_next_start(
    es: AsyncElasticsearch, isolated: Settings
):
    index = index_name(isolated.elasticsearch, "program")
    body = index_templates(isolated.elasticsearch)[index]
    older = {**body["template"]["mappings"], "properties": dict(body["template"]["mappings"]["properties"])}
    del older["properties"]["issueTime"]  # as if the field came with a later release
    await without_indices(es, isolated)
    await es.indices.put_index_template(
        name=index, index_patterns=body["index_patterns"], template={**body["template"], "mappings": older}
    )
    await es.indices.create(index=index)
    before = await es.indices.get_mapping(index=index)

    await apply_index_templates(es, isolated.elasticsearch)
    await es.index(
        index=index,
        id="1",
        document={"id": "1", "title": "上海", "status": "on_sale", "issueTime": "2026-11-27T00:00:00Z"},
        refresh=True,
    )

    assert "issueTime" not in before[index]["mappings"]["properties"]
    mapping = await es.indices.get_mapping(index=index)
    assert mapping[index]["mappings"]["properties"]["issueTime"]["type"] == "date"


async def test_provisioning_makes_the_live_name_an_alias_of_a_new_index_when_the_prefix_is_fresh(
    es: AsyncElasticsearch, isolated: Settings
):
    live = index_name(isolated.elasticsearch, "program")
    await without_indices(es, isolated)

    await apply_index_templates(es, isolated.elasticsearch)

    found = await live_index(es, live)
    assert found is not None and found.aliased
    assert found.name.startswith(f"{live}-")
    [mapping] = (await es.indices.get_mapping(index=live)).values()
    assert mapping["mappings"]["dynamic"] == "strict"  # the template's pattern covers the new name


async def test_provisioning_leaves_an_index_of_the_live_name_itself_alone_when_one_exists(
    es: AsyncElasticsearch, isolated: Settings
):
    live = index_name(isolated.elasticsearch, "program")
    await without_indices(es, isolated)
    await es.index(index=live, id="1", document={"id": "1", "title": "上海"}, refresh=True)

    await apply_index_templates(es, isolated.elasticsearch)

    assert await live_index(es, live) == LiveIndex(live, aliased=False)
    assert (await es.get(index=live, id="1"))["_source"]["title"] == "上海"
    assert list(await es.indices.get(index=f"{live}*")) == [live]


async def test_provisioning_twice_at_once_gives_the_live_name_one_index_when_the_prefix_is_fresh(
    es: AsyncElasticsearch, isolated: Settings
):
    live = index_name(isolated.elasticsearch, "program")
    await without_indices(es, isolated)

    await asyncio.gather(*(apply_index_templates(es, isolated.elasticsearch) for _ in range(3)))

    found = await live_index(es, live)
    assert found is not None and found.aliased
    assert list(await es.indices.get(index=f"{live}*")) == [found.name]
