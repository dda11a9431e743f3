"""Dead-lettering: a message that cannot be parsed or applied is set aside, never dropped silently."""

from __future__ import annotations

import structlog
from faust.types import EventT, TopicT

from infra.metrics import DEAD_LETTERS

log = structlog.get_logger(__name__)


class DeadLetters:
    def __init__(self, topic: TopicT, consumer_group: str):
        self._topic = topic
        self._group = consumer_group

    async def send(self, event: EventT[bytes], *, reason: str, error: str) -> None:
        """Copy the original bytes to the group's dead-letter topic, with where they came from and why."""
        message = event.message
        headers = {
            "source-topic": message.topic.encode(),
            "source-partition": str(message.partition).encode(),
            "source-offset": str(message.offset).encode(),
            "reason": reason.encode(),
            "error": error[:1000].encode(),
        }
        delivery = await self._topic.send(key=message.key, value=message.value, headers=headers)
        await delivery
        DEAD_LETTERS.labels(consumer_group=self._group, reason=reason).inc()
        log.warning(
            "dead_letter.sent",
            group=self._group,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            reason=reason,
            error=error,
        )
