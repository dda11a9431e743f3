"""Moving a show time and changing a price: the rules, decided on the Program aggregate without any store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from aggregates.errors import Conflict, InvalidCommand, NotFound
from aggregates.program import Program, ProgramStatus, program_not_found
from commands.program import RepriceTicketCategory, RescheduleShowTime
from events.program import RefundPolicy, ShowTimeRescheduled, TicketCategoryRepriced

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
PROGRAM, SHOW_TIME, CATEGORY = 11, 22, 33
STARTS = NOW + timedelta(days=10)


def a_program(
    status: ProgramStatus | None, starts: datetime | None, current: tuple[int, Decimal] | None
) -> Program | None:
    """A program as its history left it: on sale (or ``status``), with one show time and category."""
    if status is None:
        return None
    program = Program(
        program_id=PROGRAM,
        title="演唱会",
        actor=None,
        venue="体育馆",
        area_id=310000,
        parent_category_id=1,
        category_id=101,
        detail="",
        notices=[],
        per_order_limit=6,
        per_account_limit=6,
        seat_selectable=False,
        real_name_required=False,
        refund_policy=RefundPolicy(),
        high_heat=False,
        issue_time=None,
        payment_minutes=15,
    )
    if starts is not None:
        program._show_time_added(SHOW_TIME, starts)
    if current is not None:
        program._ticket_category_added(current[0], CATEGORY, "看台", current[1], 100)
    if status is not ProgramStatus.DRAFT:
        program._published()
    program.collect_events()
    return program


def decided(program: Program | None, decide) -> list[object]:
    """The events the command decides on ``program`` (as the handler loads it: None when unknown)."""
    if program is None:
        raise program_not_found(PROGRAM)
    decide(program)
    return [d.event for d in program.outbox()]


def reschedule(to: datetime, *, status: ProgramStatus | None = ProgramStatus.ON_SALE, starts: datetime | None = STARTS):
    cmd = RescheduleShowTime(starts_at=to)
    program = a_program(status, starts, (SHOW_TIME, Decimal("380.00")))
    return decided(program, lambda p: p.reschedule_show_time(SHOW_TIME, cmd.starts_at, NOW))


def reprice(
    price: str, *, status: ProgramStatus | None = ProgramStatus.ON_SALE, current: tuple[int, Decimal] | None = None
):
    current = current or (SHOW_TIME, Decimal("380.00"))
    cmd = RepriceTicketCategory(price=Decimal(price))
    return decided(a_program(status, STARTS, current), lambda p: p.reprice_ticket_category(CATEGORY, cmd.price))


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
        decided(
            a_program(ProgramStatus.ON_SALE, STARTS, None), lambda p: p.reprice_ticket_category(CATEGORY, Decimal(1))
        )
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
