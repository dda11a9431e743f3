"""Every Kafka topic a Faust app reads or writes, declared in one place from settings."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TopicT

from infra.settings import Settings


@dataclass(frozen=True)
class Topics:
    reference: TopicT
    user: TopicT
    program: TopicT
    order_requests: TopicT
    order: TopicT
    payment: TopicT
    dead_letter: TopicT


def _raw_topic(app: faust.App, name: str, partitions: int) -> TopicT:
    # Envelopes are decoded by events.serialization (with upcasting), not by Faust codecs,
    # so that an undecodable message can be dead-lettered instead of crashing the agent.
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=False,
    )


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    k = settings.kafka

    def family(name: str) -> TopicT:
        return _raw_topic(app, k.topic(name), k.topics[name].partitions)

    return Topics(
        reference=family("reference"),
        user=family("user"),
        program=family("program"),
        order_requests=family("order-requests"),
        order=family("order"),
        payment=family("payment"),
        dead_letter=_raw_topic(app, k.dead_letter_topic(app.conf.id), k.dead_letter_partitions),
    )
