import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from events.envelope import EventEnvelope
from events.reference import AreaCreated, AreaLevel
from events.serialization import decode
from infra.kafka import CORRELATION_HEADER, EventPublisher, ensure_topics, topic_plan
from infra.settings import Settings


async def read_all(settings: Settings, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in partitions])

        while await behind():
            for recs in (await consumer.getmany(timeout_ms=1000)).values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


async def test_published_event_is_read_back_with_its_key_and_correlation(
    isolated: Settings, publisher: EventPublisher, area_code: int
):
    envelope = EventEnvelope.wrap(
        AreaCreated(area_id=area_code, name="测试", level=AreaLevel.CITY), aggregate_version=1
    )

    metadata = await publisher.publish(envelope)
    records = await read_all(isolated, isolated.kafka.topic("reference"))

    assert metadata.topic == isolated.kafka.topic("reference")
    [record] = records
    assert record.key == f"area-{area_code}".encode()
    assert decode(record.value) == envelope
    assert dict(record.headers)[CORRELATION_HEADER] == str(envelope.correlation_id).encode()


async def test_ensure_topics_is_idempotent(isolated: Settings):
    created_again = await ensure_topics(isolated.kafka, [isolated.worker.projector_group])

    assert created_again == []
    assert {p.name for p in topic_plan(isolated.kafka, [isolated.worker.projector_group])} >= {
        isolated.kafka.topic("reference"),
        isolated.kafka.dead_letter_topic(isolated.worker.projector_group),
    }


async def test_a_partition_count_other_than_configured_is_refused(isolated: Settings):
    topics = dict(isolated.kafka.topics)
    topics["reference"] = topics["reference"].model_copy(update={"partitions": topics["reference"].partitions + 1})
    changed = isolated.kafka.model_copy(update={"topics": topics})

    with pytest.raises(RuntimeError, match="partition count"):
        await ensure_topics(changed, [isolated.worker.projector_group])
