from elasticsearch import AsyncElasticsearch, ConflictError

from infra.search import index_name
from infra.settings import Settings


async def test_area_template_applies_to_a_new_index(es: AsyncElasticsearch, isolated: Settings):
    index = index_name(isolated.elasticsearch, "area")

    await es.index(
        index=index,
        id="310000",
        document={"id": 310000, "name": "上海", "level": "city"},
        version=1,
        version_type="external",
        refresh=True,
    )
    mapping = await es.indices.get_mapping(index=index)

    assert mapping[index]["mappings"]["dynamic"] == "strict"
    assert (await es.get(index=index, id="310000"))["_source"]["name"] == "上海"


async def test_an_older_external_version_never_overwrites_a_newer_one(es: AsyncElasticsearch, isolated: Settings):
    index = index_name(isolated.elasticsearch, "area")
    await es.index(
        index=index, id="1", document={"id": 1, "name": "new", "level": "city"}, version=2, version_type="external"
    )

    try:
        await es.index(
            index=index, id="1", document={"id": 1, "name": "old", "level": "city"}, version=1, version_type="external"
        )
        raised = False
    except ConflictError:
        raised = True

    assert raised
    assert (await es.get(index=index, id="1"))["_source"]["name"] == "new"
