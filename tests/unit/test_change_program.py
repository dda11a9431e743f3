"""Moving a show time and changing a price: the rules, decided without any store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from commands.errors import Conflict, InvalidCommand, NotFound
from commands.program import (
    RepriceTicketCategory,
    RescheduleShowTime,
    reprice_ticket_category,
    reschedule_show_time,
)
from events.program import ShowTimeRescheduled, TicketCategoryRepriced

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
PROGRAM, SHOW_TIME, CATEGORY = 11, 22, 33
STARTS = NOW + timedelta(days=10)


def reschedule(to: datetime, *, status: str | None = "on_sale", starts: datetime | None = STARTS):
    return reschedule_show_time(PROGRAM, status, SHOW_TIME, starts, RescheduleShowTime(starts_at=to), NOW)


def reprice(price: str, *, status: str | None = "on_sale", current: tuple[int, Decimal] | None = None):
    current = current or (SHOW_TIME, Decimal("380.00"))
    return reprice_ticket_category(PROGRAM, status, CATEGORY, current, RepriceTicketCategory(price=Decimal(price)))


def test_a_show_time_moves_with_its_previous_time_recorded():
    later = STARTS + timedelta(days=1)

    assert reschedule(later) == [
        ShowTimeRescheduled(program_id=PROGRAM, show_time_id=SHOW_TIME, starts_at=later, previous_starts_at=STARTS)
    ]


def test_moving_a_show_time_to_where_it_is_decides_nothing():
    assert reschedule(STARTS) == []


@pytest.mark.parametrize(
    ("kwargs", "to", "error", "code"),
    [
        ({"status": None}, STARTS, NotFound, "PROGRAM_NOT_FOUND"),
        ({"starts": None}, STARTS, NotFound, "SHOW_TIME_NOT_FOUND"),
        ({"starts": NOW - timedelta(minutes=1)}, STARTS, Conflict, "SHOW_TIME_STARTED"),
        ({}, NOW, InvalidCommand, "SHOW_TIME_IN_PAST"),
    ],
)
def test_a_show_time_that_cannot_move_is_refused_with_its_code(kwargs, to, error, code):
    with pytest.raises(error) as refused:
        reschedule(to, **kwargs)

    assert refused.value.code == code


def test_a_new_price_keeps_the_previous_one_in_the_event():
    assert reprice("420.00") == [
        TicketCategoryRepriced(
            program_id=PROGRAM,
            show_time_id=SHOW_TIME,
            ticket_category_id=CATEGORY,
            price=Decimal("420.00"),
            previous_price=Decimal("380.00"),
        )
    ]


def test_the_same_price_again_decides_nothing():
    assert reprice("380") == []


def test_a_price_for_an_unknown_category_or_program_is_not_found():
    with pytest.raises(NotFound) as no_category:
        reprice_ticket_category(PROGRAM, "on_sale", CATEGORY, None, RepriceTicketCategory(price=Decimal(1)))
    with pytest.raises(NotFound) as no_program:
        reprice("1.00", status=None)

    assert (no_category.value.code, no_program.value.code) == ("TICKET_CATEGORY_NOT_FOUND", "PROGRAM_NOT_FOUND")


@pytest.mark.parametrize("price", ["-0.01", "1.005", "1000000.01", "abc"])
def test_a_malformed_price_fails_validation(price):
    with pytest.raises(ValidationError):
        RepriceTicketCategory.model_validate({"price": price})


def test_a_time_without_a_zone_fails_validation():
    with pytest.raises(ValidationError):
        RescheduleShowTime.model_validate({"startsAt": "2027-01-01T20:00:00"})
