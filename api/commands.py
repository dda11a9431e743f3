"""Appending a decided event from the API: correlation ids, and the wait for Kafka's acknowledgement."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Annotated

from aiokafka.errors import KafkaError
from fastapi import Depends, Request

from api.errors import ApiError, dependency_unavailable
from api.resources import Resources
from events.base import DomainEvent
from events.envelope import EventEnvelope

CORRELATION_HEADER = "x-correlation-id"


async def correlation_id(request: Request) -> uuid.UUID | None:
    """The caller's correlation id, if it sent one; checked before any decision is taken."""
    raw = request.headers.get(CORRELATION_HEADER)
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError(400, "BAD_CORRELATION_ID", f"{CORRELATION_HEADER} must be a UUID") from None


CorrelationDep = Annotated[uuid.UUID | None, Depends(correlation_id)]


async def append(
    res: Resources, event: DomainEvent, *, aggregate_version: int, correlation: uuid.UUID | None
) -> EventEnvelope:
    """Append one event and return once Kafka holds it; 503 if that cannot be confirmed in time."""
    [envelope] = await append_all(res, [event], first_version=aggregate_version, correlation=correlation)
    return envelope


async def append_all(
    res: Resources, events: Sequence[DomainEvent], *, first_version: int, correlation: uuid.UUID | None
) -> list[EventEnvelope]:
    """Append the events of one aggregate in order, versions from ``first_version``; 503 if unconfirmed."""
    envelopes = [
        EventEnvelope.wrap(e, aggregate_version=first_version + i, correlation_id=correlation)
        for i, e in enumerate(events)
    ]
    try:
        await asyncio.wait_for(res.publisher.publish_many(envelopes), res.settings.api.command_ack_timeout_s)
    except (KafkaError, TimeoutError) as exc:
        raise dependency_unavailable(
            "EVENT_LOG_UNAVAILABLE", "the event log did not acknowledge the command; retry", exc
        ) from exc
    return envelopes
