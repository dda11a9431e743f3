"""Appending a decided event from the API: correlation ids, and the wait for Kafka's acknowledgement."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka.errors import KafkaError
from fastapi import Request

from api.errors import ApiError
from api.resources import Resources
from events.base import DomainEvent
from events.envelope import EventEnvelope

CORRELATION_HEADER = "x-correlation-id"


def correlation_id(request: Request) -> uuid.UUID | None:
    raw = request.headers.get(CORRELATION_HEADER)
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError(400, "BAD_CORRELATION_ID", f"{CORRELATION_HEADER} must be a UUID") from None


async def append(res: Resources, request: Request, event: DomainEvent, *, aggregate_version: int) -> EventEnvelope:
    """Append the event and return once Kafka holds it; 503 if that cannot be confirmed in time."""
    envelope = EventEnvelope.wrap(event, aggregate_version=aggregate_version, correlation_id=correlation_id(request))
    try:
        await asyncio.wait_for(res.publisher.publish(envelope), res.settings.api.command_ack_timeout_s)
    except (KafkaError, TimeoutError) as exc:
        raise ApiError(503, "EVENT_LOG_UNAVAILABLE", "the event log did not acknowledge the command; retry",
                       {"error": type(exc).__name__}, headers={"Retry-After": "1"}) from exc
    return envelope
