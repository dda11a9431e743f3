"""Numbers past what the stores hold are refused where they enter (422 in the envelope, nothing
appended), pages past the search's result window too, and a seat layout too large to build; an
event in the log that the read models cannot hold is dead-lettered, never a read that fails."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from events.reference import POSTGRES_INTEGER_MAX
from infra.redis_keys import remaining_counts
from queries.search import RESULT_WINDOW
from queries.views import programs
from tests.e2e.conftest import System
from tests.e2e.test_admin_programs import PROJECTED_S, _status_is, program_body
from tests.integration.test_kafka_adapter import read_all
from tests.processes import eventually

PAST_INTEGER = POSTGRES_INTEGER_MAX + 1
PAST_BIGINT = 1 << 63


async def _log_end(system: System, family: str) -> dict[int, int]:
    topic = system.settings.kafka.topic(family)
    consumer = AIOKafkaConsumer(bootstrap_servers=system.settings.kafka.bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(system.settings.kafka.topics[family].partitions)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


def refused_with(response: Any, code: str = "VALIDATION_FAILED") -> bool:
    """A 422 with ``code`` in the error envelope."""
    body = response.json()
    return bool(response.status_code == 422 and body["code"] == code and set(body) == {"code", "message", "details"})


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/home", {"areaId": PAST_INTEGER}),
        (f"/api/v1/areas/{PAST_INTEGER}", {}),
        ("/api/v1/areas", {"parentId": PAST_INTEGER}),
        ("/api/v1/programs", {"areaId": PAST_INTEGER}),
        ("/api/v1/programs", {"parentCategoryId": 137284434887}),
        ("/api/v1/programs", {"categoryId": PAST_INTEGER}),
        (f"/api/v1/programs/{PAST_BIGINT}", {}),
        ("/api/v1/programs/1/seats", {"showTimeId": PAST_BIGINT}),
        ("/api/v1/programs", {"timeWindow": "range", "startDate": "2027-01-01", "endDate": "9999-12-31"}),
        ("/api/v1/programs", {"timeWindow": "range", "startDate": "0001-01-01", "endDate": "2027-01-01"}),
    ],
)
async def test_query_is_refused_when_an_id_or_a_day_is_past_what_the_stores_hold(system: System, path, params):
    response = await system.http.get(path, params=params)

    assert refused_with(response), response.text


async def test_ids_at_the_stores_bounds_are_looked_up_as_usual(system: System):
    area = await system.http.get(f"/api/v1/areas/{POSTGRES_INTEGER_MAX}")
    home = await system.http.get("/api/v1/home", params={"areaId": POSTGRES_INTEGER_MAX})
    children = await system.http.get("/api/v1/areas", params={"parentId": POSTGRES_INTEGER_MAX})
    search = await system.http.get("/api/v1/programs", params={"parentCategoryId": POSTGRES_INTEGER_MAX})

    assert (area.status_code, area.json()["code"]) == (404, "AREA_NOT_FOUND")
    assert (home.status_code, home.json()["code"]) == (404, "AREA_NOT_FOUND")
    assert (children.status_code, children.json()) == (200, [])
    assert (search.status_code, search.json()["total"]) == (200, 0)


@pytest.mark.parametrize(("page", "size"), [(201, 50), (501, 20), (1000, 11)])
async def test_search_is_refused_before_any_query_when_the_page_reaches_past_the_result_window(
    system: System, page, size
):
    response = await system.http.get("/api/v1/programs", params={"page": page, "size": size})

    assert refused_with(response, "PAGE_TOO_DEEP"), response.text
    assert response.json()["details"]["resultWindow"] == RESULT_WINDOW


@pytest.mark.parametrize(("page", "size"), [(200, 50), (500, 20)])
async def test_search_answers_the_deepest_page_within_the_result_window(system: System, page, size):
    response = await system.http.get("/api/v1/programs", params={"page": page, "size": size})

    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


def _counted(total: int) -> dict[str, Any]:
    show = program_body()["showTimes"][0]
    return program_body(
        seatSelectable=False,
        showTimes=[show | {"ticketCategories": [{"name": "普通票", "price": "180.00", "total": total}]}],
    )


@pytest.mark.parametrize(
    "body",
    [
        program_body(areaId=PAST_INTEGER),
        program_body(categoryId=PAST_BIGINT),
        _counted(PAST_INTEGER),
        _counted(9223372036854775808),
        program_body(issueTime="0001-01-01T00:00:00+10:00"),
    ],
)
async def test_program_is_refused_and_nothing_appended_when_a_number_or_a_time_is_past_what_the_stores_hold(
    system: System, catalogue, body
):
    before = await _log_end(system, "program")

    response = await system.http.post("/api/v1/admin/programs", json=body, headers=system.admin())

    assert refused_with(response), response.text
    assert await _log_end(system, "program") == before


async def test_category_is_refused_and_nothing_appended_when_its_sort_order_is_past_what_the_read_model_holds(
    system: System,
):
    before = await _log_end(system, "reference")
    body = {"categoryId": 77, "name": "展览", "sortOrder": PAST_INTEGER}

    response = await system.http.post("/api/v1/admin/categories", json=body, headers=system.admin())

    assert refused_with(response), response.text
    assert await _log_end(system, "reference") == before


@pytest.mark.parametrize(
    "body",
    [
        b'{"areaId": 320500, "name": "\\u82cf\\u0000", "level": "city"}',
        b'{"areaId": 320500, "name": "\\ud800", "level": "city"}',
    ],
)
async def test_area_is_refused_and_nothing_appended_when_its_name_is_not_text_the_stores_hold(system: System, body):
    before = await _log_end(system, "reference")

    response = await system.http.post(
        "/api/v1/admin/areas", content=body, headers={**system.admin(), "Content-Type": "application/json"}
    )

    assert refused_with(response), response.text
    assert await _log_end(system, "reference") == before


async def test_layout_is_refused_and_nothing_appended_when_a_show_time_has_more_seats_than_the_limit(
    system: System, catalogue
):
    show = program_body()["showTimes"][0]
    stadium = [
        {"name": f"区{i}", "price": "480.00", "seatGrid": {"rows": 500, "columns": 500, "firstRow": 1 + 500 * i}}
        for i in range(20)
    ]
    body = program_body(showTimes=[show | {"ticketCategories": stadium}] * 50)
    before = await _log_end(system, "program")

    response = await system.http.post("/api/v1/admin/programs", json=body, headers=system.admin())

    assert refused_with(response, "LAYOUT_TOO_LARGE"), response.text
    assert response.json()["details"]["limit"] == system.settings.catalogue.seats_per_show_time
    assert await _log_end(system, "program") == before


async def test_event_the_read_models_cannot_hold_is_dead_lettered_and_the_program_still_reads(
    system: System, catalogue, redis
):
    accepted = await system.http.post("/api/v1/admin/programs", json=program_body(), headers=system.admin())
    program_id = int(accepted.json()["programId"])
    await eventually(lambda: _status_is(catalogue, program_id, "draft"), PROJECTED_S, "the draft program")
    [show_time] = await programs.show_times_of(catalogue, program_id)
    counts = await redis.hgetall(remaining_counts(program_id))

    poison = await _append_raw(system, program_id, _ticket_category_added(program_id, show_time.id, PAST_BIGINT))
    await system.http.post(f"/api/v1/admin/programs/{program_id}/publish", headers=system.admin())

    async def readable() -> bool:
        return (await system.http.get(f"/api/v1/programs/{program_id}")).status_code == 200

    await eventually(readable, PROJECTED_S, "the program published after the poison")
    letters = await _dead_letters_of(system, poison)
    assert sorted(dict(letter.headers)["reason"] for letter in letters) == [b"unapplicable", b"unapplicable"]
    assert await redis.hgetall(remaining_counts(program_id)) == counts
    detail = (await system.http.get(f"/api/v1/programs/{program_id}")).json()
    assert [len(s["ticketCategories"]) for s in detail["showTimes"]] == [2]


def _ticket_category_added(program_id: int, show_time_id: int, total: int) -> dict[str, Any]:
    """A TicketCategoryAdded no command would decide, as another writer of the log might append it."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": "TicketCategoryAdded",
        "schema_version": 1,
        "aggregate_id": f"program-{program_id}",
        "aggregate_version": 1000,
        "occurred_at": datetime.now(UTC).isoformat(),
        "correlation_id": str(uuid.uuid4()),
        "payload": {
            "programId": program_id,
            "showTimeId": show_time_id,
            "ticketCategoryId": 7,
            "name": "溢出",
            "price": "1.00",
            "total": total,
        },
    }


async def _append_raw(system: System, program_id: int, envelope: dict[str, Any]) -> tuple[int, int]:
    """(partition, offset) of the envelope appended under the program's key."""
    producer = AIOKafkaProducer(bootstrap_servers=system.settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            system.settings.kafka.topic("program"), orjson.dumps(envelope), key=f"program-{program_id}".encode()
        )
        return sent.partition, sent.offset
    finally:
        await producer.stop()


async def _dead_letters_of(system: System, position: tuple[int, int]) -> list[Any]:
    """The dead letters of the message at ``position`` of the program topic, once both projectors set it aside."""
    settings = system.settings
    topic = settings.kafka.dead_letter_topic(settings.worker.projector_group)
    found: list[Any] = []

    async def both_projectors() -> bool:
        found[:] = [
            letter
            for letter in await read_all(settings, topic)
            if (int(dict(letter.headers)["source-partition"]), int(dict(letter.headers)["source-offset"])) == position
        ]
        return len(found) == 2

    await eventually(both_projectors, PROJECTED_S, "the poison in the dead-letter topic, once per projector")
    return found
