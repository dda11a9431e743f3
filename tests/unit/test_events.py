import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
import pytest

from events.base import DomainEvent
from events.envelope import EventEnvelope, derived_event_id
from events.reference import AreaCreated, AreaLevel
from events.registry import register_event, upcaster
from events.serialization import UndecodableEvent, decode, encode, payload_of


@register_event
class ShowTimeMovedForTest(DomainEvent):
    """A test-only event at schema v2: v1 carried the time as 'at', v2 calls it 'startsAt'."""

    event_type: ClassVar[str] = "ShowTimeMovedForTest"
    schema_version: ClassVar[int] = 2
    topic_family: ClassVar[str] = "program"

    show_time_id: int
    starts_at: datetime

    def aggregate_key(self) -> str:
        return f"show-time-{self.show_time_id}"


@upcaster("ShowTimeMovedForTest", from_version=1)
def _rename_at(payload: dict[str, Any]) -> dict[str, Any]:
    payload = dict(payload)
    payload["startsAt"] = payload.pop("at")
    return payload


def test_envelope_round_trips_through_bytes():
    event = AreaCreated(area_id=310000, name="上海", level=AreaLevel.CITY)
    envelope = EventEnvelope.wrap(event, aggregate_version=1)

    decoded = decode(encode(envelope))

    assert decoded == envelope
    assert payload_of(decoded) == event
    assert decoded.event_id.version == 7
    assert decoded.correlation_id == decoded.event_id


def test_envelope_payload_uses_camel_case_on_the_wire():
    envelope = EventEnvelope.wrap(
        AreaCreated(area_id=440100, name="广州", level=AreaLevel.CITY, parent_id=440000), aggregate_version=1
    )

    wire = orjson.loads(encode(envelope))

    assert wire["payload"] == {"areaId": 440100, "name": "广州", "level": "city", "parentId": 440000}
    assert wire["aggregate_id"] == "area-440100"


def test_old_schema_version_is_upcast_when_decoded():
    old = {
        "event_id": str(uuid.uuid4()),
        "type": "ShowTimeMovedForTest",
        "schema_version": 1,
        "aggregate_id": "show-time-7",
        "aggregate_version": 3,
        "occurred_at": datetime.now(UTC).isoformat(),
        "correlation_id": str(uuid.uuid4()),
        "causation_id": None,
        "payload": {"showTimeId": 7, "at": "2026-12-01T19:30:00+08:00"},
    }

    envelope = decode(orjson.dumps(old))

    assert envelope.schema_version == 2
    event = payload_of(envelope)
    assert isinstance(event, ShowTimeMovedForTest)
    assert event.starts_at.hour == 19


@pytest.mark.parametrize(
    "raw", [b"not json", b"{}", orjson.dumps({"type": "NoSuchEvent", "schema_version": 1, "payload": {}})]
)
def test_garbage_is_undecodable_when_it_is_not_a_known_event(raw: bytes):
    with pytest.raises(UndecodableEvent):
        decode(raw)


def test_event_newer_than_the_code_is_undecodable():
    envelope = EventEnvelope.wrap(AreaCreated(area_id=310000, name="上海", level=AreaLevel.CITY), aggregate_version=1)
    wire = orjson.loads(encode(envelope))
    wire["schema_version"] = 99

    with pytest.raises(UndecodableEvent):
        decode(orjson.dumps(wire))


def test_derived_event_ids_are_stable_for_the_same_inputs():
    assert derived_event_id(1234, "SeatsReserved") == derived_event_id(1234, "SeatsReserved")
    assert derived_event_id(1234, "SeatsReserved") != derived_event_id(1234, "OrderRejected")
