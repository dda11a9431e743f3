"""After an assignment, send each partition back to the offset its projectors applied for sure.

Faust acks a batch in hand when an agent is cancelled, and commits it, whether or not it was
applied (ADR 0003). The projectors know better: each keeps the last offset it applied per
partition (Postgres, in the same transaction as its rows; the Redis inventory, after its writes).
When partitions are assigned, Faust's recovery announces ``on_rebalance_complete`` and then
seeks every partition to its committed offset; a commit made in between is what it seeks to
(but aiokafka does not seek to offset 0, so that one is sought here). So where the committed
offset is past what a projector applied, the lower offset is committed and the events in
between are read again: skipped where they did land (offsets, event ids, external versions),
applied where they did not. A projector with no offset for a partition applied nothing there
(a partition it never had an event from, a projector new to the group): it reads it from the
beginning."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import faust
import structlog
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.types import TP

from projections.batch import NO_OFFSET
from projections.projector import Projector

log = structlog.get_logger(__name__)


async def rewind_to_applied(
    app: faust.App, projectors_by_topic: Mapping[str, Sequence[Projector]], bootstrap: str
) -> dict[TP, int]:
    """Commit, for each assigned partition, the offset after the lowest one its projectors applied
    (0 where one of them applied nothing there), where that is below the committed offset; return
    what was rewound."""
    assigned = {tp for tp in app.consumer.assignment() if tp.topic in projectors_by_topic}
    if not assigned:
        return {}
    committed = await committed_offsets(bootstrap, app.conf.id, assigned)
    rewound: dict[TP, int] = {}
    for topic, projectors in projectors_by_topic.items():
        applied = [await p.applied() for p in projectors]
        for tp in sorted(tp for tp in assigned if tp.topic == topic):
            # Every projector records every offset it is handed, so one that has none for a
            # partition has applied nothing there: it is read from the beginning.
            lowest = min(offsets.get((tp.topic, tp.partition), NO_OFFSET) for offsets in applied)
            if committed.get(tp, -1) > lowest + 1:
                rewound[tp] = lowest + 1
    if rewound:
        log.warning(
            "projector.rewound",
            partitions={f"{tp.topic}:{tp.partition}": [committed[tp], offset] for tp, offset in rewound.items()},
            hint="committed offsets were past what the projectors applied; reading again from there",
        )
        # The group member's own consumer, as only a member of the group may commit for it; a
        # private method of faust-streaming 0.15.3, pinned (ADR 0003).
        consumer: Any = app.consumer
        await consumer._commit(rewound)
        # Recovery seeks to the committed offsets next, but aiokafka seeks only to offsets
        # above 0: a partition read again from its beginning is sent there here.
        for tp, offset in rewound.items():
            await app.consumer.seek(tp, offset)
    return rewound


async def committed_offsets(bootstrap: str, group: str, partitions: set[TP]) -> dict[TP, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(
            group, partitions=[TopicPartition(tp.topic, tp.partition) for tp in partitions]
        )
    finally:
        await admin.close()
    return {TP(tp.topic, tp.partition): meta.offset for tp, meta in found.items() if meta.offset >= 0}
