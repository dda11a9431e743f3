"""An event whose numbers the read models cannot hold, or whose personal data is not sealed, is
undecodable (the projectors dead-letter it), never a row that fails, a count that breaks every read
after it, or a mobile in clear in a read model."""

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from events.program import SEAT_COLUMN_MAX, TicketCategoryAdded
from events.reference import POSTGRES_INTEGER_MAX
from events.serialization import UndecodableEvent, decode, payload_of
from events.user import CIPHER_MAX_LENGTH, UserRegistered
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

BLIND = "ab" * 32
CIPHER = "pd1.AAAAAAAA.c2VhbGVk"
REGISTERED = {
    "userId": 1,
    "mobileCipher": CIPHER,
    "mobileBlind": BLIND,
    "passwordHash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
}
BUYER = {
    "userId": 1,
    "ticketBuyerId": 2,
    "nameCipher": CIPHER,
    "idType": "ID_CARD",
    "idNumberCipher": CIPHER,
    "idNumberBlind": BLIND,
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
        ("UserRegistered", REGISTERED | {"userId": PAST_BIGINT}),
        ("UserRegistered", REGISTERED | {"mobileCipher": "13800138000"}),
        ("UserRegistered", REGISTERED | {"mobileCipher": "pd1.k." + "A" * CIPHER_MAX_LENGTH}),
        ("UserRegistered", REGISTERED | {"mobileBlind": BLIND.upper()}),
        ("UserRegistered", REGISTERED | {"passwordHash": "right-horse-42"}),
        ("TicketBuyerAdded", BUYER | {"nameCipher": "李四"}),
        ("TicketBuyerAdded", BUYER | {"idType": "DRIVING_LICENCE"}),
        ("TicketBuyerAdded", BUYER | {"ticketBuyerId": PAST_BIGINT}),
        ("MobileClaimed", {"mobileBlind": "13800138000", "userId": 1}),
        ("MobileClaimed", {"mobileBlind": BLIND, "userId": 1, "voidedUserId": PAST_BIGINT}),
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


def test_a_user_event_with_sealed_personal_data_is_decoded():
    event = payload_of(decode(raw("UserRegistered", REGISTERED)))

    assert isinstance(event, UserRegistered) and event.mobile_cipher == CIPHER


def test_every_seat_column_stays_inside_its_rows_score_range_in_the_inventory():
    # The available seats are scored row × SEAT_ROW_STRIDE + column: one row, one score range.
    assert SEAT_COLUMN_MAX < SEAT_ROW_STRIDE

