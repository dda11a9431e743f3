"""The envelope every event travels in, on Kafka and in replays."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from uuid_utils.compat import uuid7

from events.base import DomainEvent

# Namespace for ids derived from what caused an event, so that a processor
# re-deciding the same input emits the same event id (idempotent outputs).
DERIVED_EVENT_NAMESPACE = uuid.UUID("5f0b6c9e-7d0c-4c0e-9b8e-2a6f1d3c4e01")


def new_event_id() -> uuid.UUID:
    """A time-ordered UUIDv7."""
    return uuid7()


def derived_event_id(*parts: object) -> uuid.UUID:
    """A deterministic id for an event that is a function of its inputs (e.g. order number + type)."""
    return uuid.uuid5(DERIVED_EVENT_NAMESPACE, "/".join(str(p) for p in parts))


class EventEnvelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID
    type: str
    schema_version: int
    aggregate_id: str
    aggregate_version: int = Field(ge=1)
    occurred_at: datetime
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    payload: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        event: DomainEvent,
        *,
        aggregate_version: int,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
        event_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
    ) -> EventEnvelope:
        """Put a domain event in an envelope; a new event starts its own correlation."""
        own_id = event_id or new_event_id()
        return cls(
            event_id=own_id,
            type=event.event_type,
            schema_version=event.schema_version,
            aggregate_id=event.aggregate_key(),
            aggregate_version=aggregate_version,
            occurred_at=occurred_at or datetime.now(UTC),
            correlation_id=correlation_id or own_id,
            causation_id=causation_id,
            payload=event.model_dump(mode="json", by_alias=True),
        )
