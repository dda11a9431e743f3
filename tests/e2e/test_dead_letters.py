"""A message the projector cannot read is set aside on the group's dead-letter topic; the rest flows on."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from tests.e2e.conftest import System
from tests.integration.test_kafka_adapter import read_all
from tests.processes import eventually

PROJECTED_S = 60


async def test_undecodable_message_is_dead_lettered_and_later_events_still_land(system: System, area_code):
    settings = system.settings
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        poison = await producer.send_and_wait(settings.kafka.topic("reference"), b"\xff not an event", key=b"area-x")
    finally:
        await producer.stop()

    accepted = await system.http.post(
        "/api/v1/admin/areas",
        json={"areaId": area_code, "name": "武汉", "level": "city"},
        headers=system.admin(),
    )

    async def projected() -> bool:
        return (await system.http.get(accepted.headers["location"])).status_code == 200

    await eventually(projected, PROJECTED_S, "the valid area after the poison message")
    dead = await read_all(settings, settings.kafka.dead_letter_topic(settings.worker.projector_group))
    [letter] = dead
    headers = {k: v.decode() for k, v in letter.headers}
    assert letter.value == b"\xff not an event"
    assert letter.key == b"area-x"
    assert headers["reason"] == "undecodable"
    assert (headers["source-topic"], int(headers["source-partition"]), int(headers["source-offset"])) == (
        poison.topic,
        poison.partition,
        poison.offset,
    )
