from elasticsearch import AsyncElasticsearch, ConflictError

from infra.search import apply_index_templates, index_name, index_templates
from infra.settings import Settings


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
    mapping = await es.indices.get_mapping(index=index)

    assert mapping[index]["mappings"]["dynamic"] == "strict"
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
