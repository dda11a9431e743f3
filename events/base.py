"""What every domain event is: a typed, versioned payload bound to a topic family."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class DomainEvent(BaseModel):
    """A fact (past tense) or an intent to be decided, as a versioned schema.

    Subclasses set ``event_type`` (stable name on the wire), ``schema_version``
    (bumped with an upcaster, never changed in place) and ``topic_family``
    (the Kafka topic family it is published on).
    """

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    topic_family: ClassVar[str]

    def aggregate_key(self) -> str:
        """The aggregate this event belongs to; also its Kafka partition key."""
        raise NotImplementedError
