"""An event whose numbers the read models cannot hold is undecodable (the projectors dead-letter it),
never a row that fails or a count that breaks every read after it."""

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from events.program import SEAT_COLUMN_MAX, TicketCategoryAdded
from events.reference import POSTGRES_INTEGER_MAX
from events.serialization import UndecodableEvent, decode, payload_of
from infra.redis_keys import SEAT_ROW_STRIDE

PAST_INTEGER = POSTGRES_INTEGER_MAX + 1
PAST_BIGINT = 1 << 63
CATEGORY_KEYS = {"programId": 1, "showTimeId": 2, "ticketCategoryId": 3}
SEAT = {"seatId": 9, "row": 1, "column": 1, "price": "80.00"}
TICKET_CATEGORY = CATEGORY_KEYS | {"name": "看台", "price": "80.00", "total": 5}
PROGRAM = {
    "programId": 1,
    "title": "t",
    "venue": "v",
    "areaId": 310000,
    "parentCategoryId": 1,
    "categoryId": 101,
    "perOrderLimit": 6,
    "perAccountLimit": 6,
    "seatSelectable": True,
    "realNameRequired": False,
    "paymentMinutes": 15,
}


def raw(event_type: str, payload: dict[str, Any]) -> bytes:
    """An envelope as another writer of the log might have put it, bypassing the schemas."""
    return orjson.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "type": event_type,
            "schema_version": 1,
            "aggregate_id": "program-1",
            "aggregate_version": 1,
            "occurred_at": datetime.now(UTC).isoformat(),
            "correlation_id": str(uuid.uuid4()),
            "payload": payload,
        }
    )


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("TicketCategoryAdded", TICKET_CATEGORY | {"total": PAST_INTEGER}),
        ("TicketCategoryAdded", TICKET_CATEGORY | {"total": PAST_BIGINT}),
        ("TicketCategoryAdded", TICKET_CATEGORY | {"price": "100000000.00"}),
        ("TicketCategoryAdded", TICKET_CATEGORY | {"ticketCategoryId": PAST_BIGINT}),
        ("TicketCategoryRepriced", CATEGORY_KEYS | {"price": "100000000.00", "previousPrice": "1.00"}),
        ("SeatsLaidOut", CATEGORY_KEYS | {"seats": [SEAT | {"row": PAST_INTEGER}]}),
        ("SeatsLaidOut", CATEGORY_KEYS | {"seats": [SEAT | {"column": SEAT_COLUMN_MAX + 1}]}),
        ("ProgramCreated", PROGRAM | {"areaId": PAST_INTEGER}),
        ("ProgramCreated", PROGRAM | {"categoryId": PAST_INTEGER}),
        ("ProgramCreated", PROGRAM | {"perOrderLimit": 1 << 15}),
        ("ProgramPublished", {"programId": PAST_BIGINT}),
        ("ShowTimeAdded", {"programId": 1, "showTimeId": 2, "startsAt": "9999-12-31T23:00:00-10:00"}),
        ("ProgramCreated", PROGRAM | {"issueTime": "0001-01-01T00:00:00+10:00"}),
        ("ProgramCreated", PROGRAM | {"title": "t\x00"}),
        ("AreaCreated", {"areaId": 310000, "name": "上\x00海", "level": "city"}),
        ("AreaCreated", {"areaId": PAST_INTEGER, "name": "x", "level": "city"}),
        ("AreaCreated", {"areaId": 310000, "name": "x", "level": "district", "parentId": PAST_INTEGER}),
        ("CategoryCreated", {"categoryId": PAST_INTEGER, "name": "x"}),
        ("CategoryCreated", {"categoryId": 1, "name": "x", "sortOrder": PAST_INTEGER}),
    ],
)
def test_event_is_undecodable_when_a_number_or_a_time_is_past_what_the_stores_hold(event_type, payload):
    envelope = decode(raw(event_type, payload))

    with pytest.raises(UndecodableEvent):
        payload_of(envelope)


def test_event_at_the_read_models_bounds_is_decoded():
    payload = TICKET_CATEGORY | {"total": POSTGRES_INTEGER_MAX, "price": "99999999.99"}

    event = payload_of(decode(raw("TicketCategoryAdded", payload)))

    assert isinstance(event, TicketCategoryAdded) and event.total == POSTGRES_INTEGER_MAX


def test_every_seat_column_stays_inside_its_rows_score_range_in_the_inventory():
    # The available seats are scored row × SEAT_ROW_STRIDE + column: one row, one score range.
    assert SEAT_COLUMN_MAX < SEAT_ROW_STRIDE

