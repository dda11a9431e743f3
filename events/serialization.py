"""Envelopes to and from bytes (orjson), upcasting old schema versions on the way in."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from events.base import DomainEvent
from events.envelope import EventEnvelope
from events.registry import event_class, upcast


class UndecodableEvent(ValueError):
    """Bytes on a topic that are not a valid event of a known type: dead-letter material."""


def encode(envelope: EventEnvelope) -> bytes:
    return orjson.dumps(envelope.model_dump(mode="json"))


def decode(raw: bytes | None) -> EventEnvelope:
    """Parse an envelope and lift its payload to the current schema version."""
    if raw is None:
        raise UndecodableEvent("a tombstone (no value) is not an event")
    try:
        data: dict[str, Any] = orjson.loads(raw)
        version, payload = upcast(data["type"], int(data["schema_version"]), data["payload"])
        data["schema_version"], data["payload"] = version, payload
        return EventEnvelope.model_validate(data)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, LookupError) as exc:
        raise UndecodableEvent(str(exc)) from exc


def payload_of(envelope: EventEnvelope) -> DomainEvent:
    """The typed domain event inside an envelope."""
    try:
        return event_class(envelope.type).model_validate(envelope.payload)
    except (ValidationError, LookupError) as exc:
        raise UndecodableEvent(str(exc)) from exc
