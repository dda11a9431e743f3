"""A message the projector cannot read is set aside on the group's dead-letter topic; the rest flows on."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from infra.postgres.pools import ShardPools
from infra.settings import Settings
from projections.batch import NO_OFFSET
from projections.offsets import applied_offsets
from tests.e2e.conftest import System
from tests.integration.test_kafka_adapter import read_all
from tests.processes import eventually

PROJECTED_S = 60


async def test_undecodable_message_is_dead_lettered_and_later_events_still_land(system: System, area_code):
    settings = system.settings
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        # On another partition than the valid area's, so nothing but the dead-lettering itself
        # can move that partition's stored offset past the poison.
        partitions = list(range(settings.kafka.topics["reference"].partitions))
        area_partition = DefaultPartitioner()(f"area-{area_code}".encode(), partitions, partitions)
        poison = await producer.send_and_wait(
            settings.kafka.topic("reference"),
            b"\xff not an event",
            key=b"area-x",
            partition=(area_partition + 1) % len(partitions),
        )
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

    async def counted_as_handled() -> bool:
        return all(
            offset >= poison.offset for offset in await _stored_offsets(settings, poison.topic, poison.partition)
        )

    # Its offset counts as handled in every database, so the next batch is not taken for a gap.
    await eventually(counted_as_handled, PROJECTED_S, "the poison's offset stored as handled")


async def _stored_offsets(settings: Settings, topic: str, partition: int) -> list[int]:
    pools = ShardPools(settings.postgres)
    await pools.start()
    try:
        projector = f"{settings.worker.projector_group}.reference"
        offsets = []
        for _, pool in pools:
            async with pool.acquire() as conn:
                offsets.append((await applied_offsets(conn, projector)).get((topic, partition), NO_OFFSET))
        return offsets
    finally:
        await pools.stop()
